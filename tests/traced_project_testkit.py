"""A project whose agent is traced with the real `opik` SDK, and whose suite fails one item."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from suite_testkit import git, write_suite

AGENT = """
import opik

@opik.track(entrypoint=True)
def answer(question: str) -> str:
    if question == "q1":
        raise ValueError("no answer for q1")
    return "answer to " + question
"""


def make_traced_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`shop`: suite `smoke` (q0 passes, q1 raises; two runs each), committed, with no Opik
    server or key in the environment."""
    root = tmp_path / "shop"
    (root / "bot").mkdir(parents=True)
    (root / "bot" / "__init__.py").write_text("")
    (root / "bot" / "agent.py").write_text(AGENT)
    (root / "pyproject.toml").write_text(f'[tool.opik-connect]\npython = "{sys.executable}"\n')
    items = "\n".join(f"  - id: q{n}\n    data: {{question: q{n}}}" for n in range(2))
    write_suite(
        root,
        "smoke",
        f"global_execution_policy: {{runs_per_item: 2, pass_threshold: 1}}\nitems:\n{items}\n",
    )
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    for name in ("OPIK_API_KEY", "OPIK_WORKSPACE", "OPIK_PROJECT_NAME", "OPIK_TRACK_DISABLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.setenv("OPIK_CONFIG_PATH", str(tmp_path / "no.config"))
    monkeypatch.setenv("OPIK_SENTRY_ENABLE", "false")
    monkeypatch.setenv("OPIK_ANALYTICS_ENABLE", "false")
    return root
