"""The daemon's suite entry points on real git worktrees: RunSuite and the rerun after a fix."""

import io
from pathlib import Path

import pytest
from rich.console import Console

from opik_connect.config import project_state_dir
from opik_connect.connect.fixes.branches import FixSummary
from opik_connect.connect.proposals.journal import JournaledProposal, ProposalJournal
from opik_connect.connect.suites.run_records import before_after, list_records
from opik_connect.connect.suites.suite_commands import (
    make_after_commit,
    make_run_suite_handler,
    rerun_after_fix,
    resolve_tree,
)
from opik_connect.protocol import BridgeError, ErrorCode, ProposeChangeArgs, RunSuiteArgs
from tests.suite_testkit import git, make_project, suite_env, write_agent, write_suite

__all__ = ["suite_env"]

BRANCH = "opik/fix/abc123-answer-b"
SUITE = """
name: s
items:
  - {id: a, data: {question: a}, assertions: [{contains: answer to a}]}
  - {id: b, data: {question: b}, assertions: [{contains: fixed}]}
"""


@pytest.fixture
def repo_with_fix(suite_env: Path) -> tuple[Path, Path]:
    """A user repo whose item b fails, and a fix worktree where it passes and a suite was added."""
    root = make_project(suite_env, SUITE, version="user")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "init")
    worktree = suite_env / "state" / "worktrees" / "abc123"
    git(root, "worktree", "add", "-q", "-b", BRANCH, str(worktree))
    write_agent(worktree, version="fixed")
    write_suite(worktree, "t", "name: t\nitems: [{id: only, data: {question: t}}]\n")
    git(worktree, "add", ".")
    git(worktree, "commit", "-q", "-m", "fix b")
    record_fix(root, BRANCH, worktree)
    return root, worktree


def record_fix(root: Path, branch: str, worktree: Path, **fields) -> None:
    """The journal entry an approved proposal leaves: what makes `branch` a fix branch."""
    ProposalJournal(project_state_dir(root)).save(
        JournaledProposal(
            id="abc123",
            args=ProposeChangeArgs(title="Answer b", reason="b was wrong", diff=""),
            diff="",
            files=[],
            base_head=None,
            hashes={},
            **{"status": "applied", "branch": branch, "worktree": str(worktree), **fields},
        )
    )


@pytest.mark.timeout(60)
async def test_run_suite_command_on_the_user_tree_and_on_a_fix_branch(
    repo_with_fix: tuple[Path, Path],
) -> None:
    root, worktree = repo_with_fix
    shown = io.StringIO()
    handle = make_run_suite_handler(
        root, workers=2, judge=None, console=Console(file=shown, width=200)
    )
    before = await handle(RunSuiteArgs(suite="s"))
    assert (before.tree, before.status) == ("user", "failed")
    assert "output does not contain 'fixed'" in shown.getvalue()
    assert before.commit == git(root, "rev-parse", "HEAD")
    after = await handle(RunSuiteArgs(suite="s", branch=BRANCH, item_ids=["b"]))
    assert (after.tree, after.status) == (BRANCH, "passed")
    assert after.commit == git(worktree, "rev-parse", "HEAD")
    assert [i.item_id for i in after.items] == ["b"]
    assert after.items[0].runs[0].output == "fixed answer to b"

    for args, code in [
        (RunSuiteArgs(suite="s", branch="opik/fix/none"), ErrorCode.INVALID_ARGS),
        (RunSuiteArgs(suite="missing"), ErrorCode.SUITE_NOT_FOUND),
        (RunSuiteArgs(suite="../../etc/x"), ErrorCode.INVALID_ARGS),
        (RunSuiteArgs(suite="s", item_ids=["zzz"]), ErrorCode.INVALID_ARGS),
    ]:
        with pytest.raises(BridgeError) as caught:
            await handle(args)
        assert caught.value.code == code, args


@pytest.mark.timeout(60)
async def test_rerun_after_fix_runs_every_suite_failing_items_first_and_records_before_after(
    repo_with_fix: tuple[Path, Path],
) -> None:
    root, worktree = repo_with_fix
    handle = make_run_suite_handler(root, workers=2, judge=None)
    before = await handle(RunSuiteArgs(suite="s"))
    out = io.StringIO()
    results = await rerun_after_fix(
        root,
        worktree,
        BRANCH,
        None,
        ["b"],
        proposal_id="abc123",
        workers=2,
        judge=None,
        console=Console(file=out, width=200),
    )
    assert [r.suite for r in results] == ["s", "t"], "no linked suite: all of the worktree's"
    assert [i.item_id for i in results[0].items] == ["b", "a"], "the proposal's items first"
    assert all(r.status == "passed" and r.tree == BRANCH for r in results)
    assert "b (named by the fix)" in out.getvalue()
    assert {r.summary.run_id for r in list_records(root, proposal_id="abc123")} == {
        r.run_id for r in results
    }
    pairs = {p.suite: p for p in before_after(root, branch=BRANCH)}
    assert pairs["s"].before is not None and pairs["s"].before.summary.run_id == before.run_id
    assert pairs["s"].before.summary.status == "failed"
    assert pairs["s"].after.summary.status == "passed"
    assert pairs["t"].before is None


@pytest.mark.timeout(60)
async def test_after_commit_hook_runs_the_linked_suite_for_a_fix_record(
    repo_with_fix: tuple[Path, Path],
) -> None:
    root, worktree = repo_with_fix
    hook = make_after_commit(root, workers=2, judge=None, console=Console(file=io.StringIO()))
    fix = FixSummary(
        id="abc123",
        branch=BRANCH,
        title="Answer b",
        reason="b was wrong",
        trace_id=None,
        test_case_ids=["b"],
        suite="s",
        created=0.0,
        status="active",
        commit=None,
        worktree=worktree,
    )
    (result,) = await hook(fix)
    assert (result.suite, result.status, result.items[0].item_id) == ("s", "passed", "b")
    with pytest.raises(BridgeError):
        await hook(fix.model_copy(update={"worktree": None}))


@pytest.mark.timeout(30)
async def test_run_suite_refuses_branches_that_are_neither_the_users_nor_a_recorded_fix(
    repo_with_fix: tuple[Path, Path], suite_env: Path
) -> None:
    root, worktree = repo_with_fix
    other = suite_env / "elsewhere"
    git(root, "worktree", "add", "-q", "-b", "experiment", str(other))
    unrecorded = suite_env / "unrecorded"
    git(root, "worktree", "add", "-q", "-b", "opik/fix/zzz999-made-by-hand", str(unrecorded))
    for branch in ("experiment", "opik/fix/zzz999-made-by-hand"):
        with pytest.raises(BridgeError) as caught:
            await resolve_tree(root, branch)
        assert caught.value.code == ErrorCode.INVALID_ARGS
        assert "neither" in caught.value.message and caught.value.details["branch"] == branch
    assert await resolve_tree(root, None) == (root, "user")
    assert await resolve_tree(root, "main") == (root.resolve(), "user")
    assert await resolve_tree(root, BRANCH) == (worktree.resolve(), BRANCH)
    record_fix(root, BRANCH, worktree, fix_status="dropped")
    with pytest.raises(BridgeError) as caught:
        await resolve_tree(root, BRANCH)
    assert caught.value.code == ErrorCode.INVALID_ARGS
