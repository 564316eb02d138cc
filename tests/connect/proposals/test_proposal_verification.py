"""Verified before you are asked: a real git repo, the real suite runner (deterministic
assertions, no judge), the proposal built in its own worktree and compared with its base."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from fix_flow_testkit import FIX_EDIT, make_refund_project, refund_fix
from rich.console import Console

from opik_connect.connect.proposals.service import ProposalService
from opik_connect.connect.proposals.verification import ProposalVerifier, verdict
from opik_connect.connect.suites.run_records import list_records
from opik_connect.connect.suites.suite_runner import run_suite
from opik_connect.connect.terminal.approval_prompt import render_proposal
from opik_connect.protocol import FileEdit, ItemChange, ProposeChangeArgs, SuiteRunSummary

pytestmark = pytest.mark.timeout(90)

TWO_ITEMS = """\
name: refunds
items:
  - id: c1
    data: {question: "how much is my refund?"}
    assertions: [{contains: 10 dollars}]
  - id: c2
    data: {question: "is there a refund?"}
    assertions: [{contains: "Your refund"}]
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def two_item_project(root: Path) -> Path:
    repo = make_refund_project(root)
    (repo / ".opik/suites/refunds.yaml").write_text(TWO_ITEMS)
    git(repo, "commit", "-qam", "two items")
    return repo


async def _run(suite: str, tree: Path, label: str, first: list[str], pid: str | None, root: Path):
    return await run_suite(
        root,
        suite,
        tree=tree,
        tree_label=label,
        first_items=first,
        workers=2,
        judge=None,
        proposal_id=pid,
    )


def verifying_service(repo: Path) -> tuple[ProposalService, list[str]]:
    """A service that verifies before showing; records its after_commit calls and decisions."""
    reruns: list[str] = []

    async def after_commit(fix) -> list[SuiteRunSummary]:
        reruns.append(fix.id)
        return []

    async def emit(event) -> None:
        reruns.append(f"decided {event.proposal_id}")

    service = ProposalService.for_project(repo, after_commit=after_commit, emit=emit)

    async def run(suite, tree, label, first, pid):
        return await _run(suite, tree, label, first, pid, repo)

    service.verifier = ProposalVerifier(service.root, service.fixes, run)
    return service, reruns


def edit(old: str, new: str) -> ProposeChangeArgs:
    return refund_fix().model_copy(
        update={"edits": [FileEdit(path=FIX_EDIT["path"], old_string=old, new_string=new)]}
    )


async def test_a_fixing_proposal_is_shown_verified_and_approval_reuses_the_build(
    tmp_path: Path, state_dir: Path
) -> None:
    repo = two_item_project(tmp_path / "project")
    (repo / "notes.txt").write_text("my uncommitted work\n")
    status_before = git(repo, "status", "--porcelain")
    service, reruns = verifying_service(repo)

    result = await service.submit(refund_fix())

    check = result.verification
    assert result.status == "pending" and check is not None
    assert check.status == "verified"
    assert check.summary == "verified: c1 failed → passed; 1 other item still pass"
    [record] = service.pending()
    assert git(repo, "status", "--porcelain") == status_before
    assert git(repo, "branch", "--list", "opik/fix/*") == ""
    runs_before_approval = len(list_records(repo, proposal_id=record.id))

    done = await service.approve(record.id, by="test")

    assert done.status == "applied" and done.commit == check.commit
    assert done.suites_done and done.suite_results == check.suite_results
    assert reruns == [f"decided {record.id}"], "decided, with no second suite run"
    assert len(list_records(repo, proposal_id=record.id)) == runs_before_approval == 1
    assert git(repo, "rev-parse", done.branch or "").strip() == check.commit
    assert git(repo, "status", "--porcelain") == status_before


async def test_a_proposal_that_breaks_a_passing_item_is_a_regression(
    tmp_path: Path, state_dir: Path
) -> None:
    repo = two_item_project(tmp_path / "project")
    service, _ = verifying_service(repo)

    result = await service.submit(edit("Your refund is 20 dollars", "It is 10 dollars"))

    check = result.verification
    assert check is not None and check.status == "regression"
    assert check.summary.startswith(
        "REGRESSION: c2 passed → failed (run 1: output does not contain 'Your refund')"
    )
    assert "c1 failed → passed" in check.summary
    assert result.status == "pending", "not held: its sender did not ask"


async def test_an_unverified_proposal_is_held_when_asked_and_its_build_removed(
    tmp_path: Path, state_dir: Path
) -> None:
    repo = two_item_project(tmp_path / "project")
    service, _ = verifying_service(repo)
    args = edit("20 dollars", "15 dollars").model_copy(update={"hold_if_unverified": True})

    result = await service.submit(args)

    check = result.verification
    assert result.status == "held" and check is not None
    assert check.status == "not_verified"
    assert check.summary == (
        "NOT verified: c1 still fails (run 1: output does not contain '10 dollars'); "
        "1 other item still pass"
    )
    assert service.pending() == []
    assert not service.fixes.worktree_for(service.get(result.proposal_id)).exists()


async def test_the_base_run_is_reused_and_a_moved_diff_builds_again(
    tmp_path: Path, state_dir: Path
) -> None:
    repo = two_item_project(tmp_path / "project")
    service, reruns = verifying_service(repo)
    first = await service.submit(refund_fix())
    await service.submit(refund_fix("Answer the right refund again"))
    base_runs = [r for r in list_records(repo, tree="user")]
    assert len(base_runs) == 1, "the second proposal on the same base reuses the base run"

    record = service.get(first.proposal_id)
    edited = record.diff.replace("Your refund is 10 dollars", "Your refund is 10 dollars!")
    edited_record = await service.replace_diff(record.id, edited)
    panel = Console(file=io.StringIO(), width=200)
    panel.print(render_proposal(edited_record))
    assert "for an earlier version of this diff" in panel.file.getvalue()  # type: ignore[attr-defined]
    done = await service.approve(record.id, by="test")

    assert done.status == "applied"
    assert done.commit != (record.verification.commit if record.verification else None)
    assert reruns == [record.id, f"decided {record.id}"], "the edited diff was built and rerun"


def test_verdict_lines() -> None:
    def change(item: str, before: str, after: str, target: bool, detail: str = ""):
        return ItemChange(
            suite="s", item_id=item, before=before, after=after, target=target, detail=detail
        )

    assert verdict(
        [change("new-case", "new", "passed", True), change("a", "passed", "passed", False)]
    ) == (
        "verified",
        "verified: new test case new-case passes; 1 other item still pass",
    )
    assert verdict([change("a", "passed", "passed", False)]) == (
        "not_verified",
        "NOT verified: no item failed before, so nothing shows the fix",
    )


async def test_a_test_case_the_proposal_adds_runs_on_the_base_too(
    tmp_path: Path, state_dir: Path
) -> None:
    """c3 fails on the base (it shows the bug), c4 passes there too (it shows nothing)."""
    repo = two_item_project(tmp_path / "project")
    service, _ = verifying_service(repo)
    last = '    assertions: [{contains: "Your refund"}]\n'
    added = (
        "  - id: c3\n    data: {question: q3}\n    assertions: [{contains: 10 dollars}]\n"
        '  - id: c4\n    data: {question: q4}\n    assertions: [{contains: "refund"}]\n'
    )
    args = refund_fix().model_copy(
        update={
            "edits": [
                FileEdit(**FIX_EDIT),
                FileEdit(
                    path=".opik/suites/refunds.yaml", old_string=last, new_string=last + added
                ),
            ],
            "test_case_ids": ["c1", "c3", "c4"],
        }
    )

    result = await service.submit(args)

    check = result.verification
    assert check is not None and check.status == "verified", check
    assert check.summary == (
        "verified: c1 failed → passed; c3 failed → passed; c4 passes, and passed without the "
        "change too; 1 other item still pass"
    )
    [on_base] = [r for r in list_records(repo) if r.summary.tree.startswith("base ")]
    assert [i.item_id for i in on_base.summary.items] == ["c3", "c4"]
    assert on_base.proposal_id is None, "never taken for the fix's own run"
    assert [len(r.summary.items) for r in list_records(repo, tree="user")] == [2]
