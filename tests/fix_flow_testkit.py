"""The refund project the fix-flow tests share: an agent that answers 20 dollars where its suite
wants 10, and the proposal that fixes it."""

from __future__ import annotations

from pathlib import Path

from platform_api_testkit import make_git_repo

from opik_connect.protocol import FileEdit, ProposeChangeArgs

AGENT = """\
from opik import track


@track(entrypoint=True)
def answer(question: str = "", **extra):
    return {"output": "Your refund is 20 dollars"}
"""
SUITE = """\
name: refunds
items:
  - id: c1
    data: {question: "how much is my refund?"}
    assertions: [{contains: 10 dollars}]
"""
FIX_EDIT = {"path": "agentpkg/agent.py", "old_string": "20 dollars", "new_string": "10 dollars"}


def make_refund_project(root: Path) -> Path:
    """A git repo whose suite `refunds` fails on the user's tree and passes once fixed."""
    return make_git_repo(
        root,
        {
            "agentpkg/__init__.py": "",
            "agentpkg/agent.py": AGENT,
            ".opik/suites/refunds.yaml": SUITE,
        },
    )


def refund_fix(title: str = "Answer the right refund") -> ProposeChangeArgs:
    return ProposeChangeArgs(
        title=title,
        reason="the suite's c1 fails: the agent says 20 dollars",
        suite="refunds",
        test_case_ids=["c1"],
        edits=[FileEdit(**FIX_EDIT)],
    )
