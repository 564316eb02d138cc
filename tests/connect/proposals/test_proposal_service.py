"""ProposalService with real git: journal, approval into a fix branch, staleness, outbox."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from proposal_fixtures import git, proposal_service, snapshot

from opik_connect.connect.fixes.branches import FixSummary
from opik_connect.connect.proposals.service import ProposalService
from opik_connect.protocol import (
    BridgeError,
    ErrorCode,
    FileEdit,
    FilesChanged,
    ProposalDecided,
    ProposeChangeArgs,
    SuiteRunSummary,
)

pytestmark = pytest.mark.timeout(30)


def args(**overrides) -> ProposeChangeArgs:
    base = dict(
        title="Answer empty questions politely",
        reason="The trace shows a bare 'empty' reply.",
        trace_id="trace-123",
        test_case_ids=["case-1", "case-2"],
        suite="suites/qa.yaml",
        edits=[
            FileEdit(
                path="agent.py", old_string="return 'empty'", new_string="return 'Please ask.'"
            )
        ],
    )
    base.update(overrides)
    return ProposeChangeArgs(**base)


class Outbox:
    def __init__(self) -> None:
        self.events: list[ProposalDecided] = []
        self.fail = False

    async def __call__(self, event) -> None:
        if self.fail:
            raise ConnectionError("link down")
        self.events.append(event)


def summary(branch: str) -> SuiteRunSummary:
    return SuiteRunSummary(
        run_id="r1",
        suite="suites/qa.yaml",
        status="passed",
        tree=branch,
        items=[],
        started_at="2026-01-01T00:00:00Z",
        duration_s=0.1,
        judge="none",
    )


def service(repo: Path, outbox: Outbox | None = None, after_commit=None) -> ProposalService:
    return proposal_service(repo, emit=outbox, after_commit=after_commit)


async def test_submit_journals_pending_with_mode_0600(repo: Path) -> None:
    svc = service(repo)
    result = await svc.submit(args())
    assert result.status == "pending" and "+        return 'Please ask.'" in result.diff
    assert [(f.path, f.added, f.removed) for f in result.files] == [("agent.py", 1, 1)]
    path = svc.journal.dir / f"{result.proposal_id}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    restarted = service(repo)
    assert [r.id for r in restarted.pending()] == [result.proposal_id]
    assert restarted.pending()[0].base_head == git(repo, "rev-parse", "HEAD")


async def test_submit_refuses_at_once_with_the_engine_error(repo: Path) -> None:
    svc = service(repo)
    with pytest.raises(BridgeError) as caught:
        await svc.submit(args(edits=[FileEdit(path="agent.py", old_string="nope", new_string="x")]))
    assert caught.value.code == ErrorCode.MATCH_NOT_FOUND
    with pytest.raises(BridgeError) as caught:
        await svc.submit(args(edits=[FileEdit(path=".env", old_string="", new_string="K=1")]))
    assert caught.value.code == ErrorCode.SENSITIVE_PATH
    assert svc.pending() == []


async def test_approve_builds_branch_and_leaves_dirty_checkout_identical(repo: Path) -> None:
    (repo / "notes.txt").write_text("one\ntwo\nthree\nstashed\n")
    git(repo, "stash", "push", "-q", "-m", "keep me")
    (repo / "notes.txt").write_text("one\nTWO staged\nthree\n")
    git(repo, "add", "notes.txt")
    (repo / "notes.txt").write_text("one\nTWO staged\nthree\nunstaged\n")
    (repo / "scratch.py").write_text("untracked = True\n")
    (repo / "debug.log").write_text("ignored\n")
    outbox = Outbox()
    seen: list[FixSummary] = []

    async def after_commit(fix: FixSummary) -> list[SuiteRunSummary]:
        seen.append(fix)
        assert (fix.worktree / "agent.py").read_text().count("Please ask.") == 1
        return [summary(fix.branch)]

    svc = service(repo, outbox, after_commit)
    proposal = await svc.submit(args())
    before = snapshot(repo)
    record = await svc.approve(proposal.proposal_id)
    assert snapshot(repo) == before
    assert record.status == "applied" and record.delivered
    branch = f"opik/fix/{record.id}-answer-empty-questions-politely"
    assert record.branch == branch
    assert git(repo, "rev-parse", branch) == record.commit
    assert git(repo, "rev-parse", f"{branch}^") == record.base_head
    message = git(repo, "log", "-1", "--format=%B", branch)
    assert message.startswith("Answer empty questions politely\n\nThe trace shows")
    trailers = git(repo, "log", "-1", "--format=%(trailers)", branch).splitlines()
    assert trailers == [
        f"Opik-Proposal: {record.id}",
        "Opik-Trace: trace-123",
        "Opik-Test-Case: case-1",
        "Opik-Test-Case: case-2",
        "Opik-Suite: suites/qa.yaml",
    ]
    assert git(repo, "diff", "--name-only", f"{branch}^", branch) == "agent.py"
    worktree = Path(record.worktree)
    assert worktree.is_relative_to(svc.state_dir / "worktrees")
    assert git(worktree, "symbolic-ref", "HEAD") == f"refs/heads/{branch}"
    assert [e.decision for e in outbox.events] == ["approved"]
    assert outbox.events[0].branch == branch and outbox.events[0].commit == record.commit
    assert outbox.events[0].suite_results[0].tree == branch
    assert seen[0].test_case_ids == ["case-1", "case-2"]
    with pytest.raises(BridgeError) as caught:
        await svc.approve(record.id)
    assert caught.value.code == ErrorCode.INVALID_ARGS


async def test_reject_reaches_platform_once_across_a_dropped_link(repo: Path) -> None:
    outbox = Outbox()
    outbox.fail = True
    svc = service(repo, outbox)
    proposal = await svc.submit(args())
    record = await svc.reject(proposal.proposal_id, "not like this")
    assert record.status == "rejected" and outbox.events == []
    assert [r.id for r in svc.journal.undelivered()] == [record.id]
    outbox.fail = False
    restarted = service(repo, outbox)
    await restarted.start()
    await restarted.deliver_outbox()
    assert [(e.decision, e.reason) for e in outbox.events] == [("rejected", "not like this")]
    assert restarted.journal.undelivered() == []


async def test_decision_from_another_process_is_delivered_by_the_daemon(repo: Path) -> None:
    outbox = Outbox()
    daemon = service(repo, outbox, after_commit=lambda fix: _suite(fix))
    proposal = await daemon.submit(args())
    cli = service(repo)
    await cli.approve(proposal.proposal_id)
    assert outbox.events == []
    assert await daemon.deliver_outbox() == 1
    assert await daemon.deliver_outbox() == 0
    assert outbox.events[0].decision == "approved" and outbox.events[0].suite_results


async def _suite(fix: FixSummary) -> list[SuiteRunSummary]:
    return [summary(fix.branch)]


async def test_file_changed_so_diff_no_longer_applies_goes_stale(repo: Path) -> None:
    outbox = Outbox()
    svc = service(repo, outbox)
    proposal = await svc.submit(args())
    (repo / "agent.py").write_text("def answer(q):\n    return 'rewritten'\n")
    stale = await svc.on_files_changed(
        FilesChanged.model_validate({"changes": [{"path": "agent.py", "change": "modified"}]})
    )
    assert [r.id for r in stale] == [proposal.proposal_id]
    assert svc.get(proposal.proposal_id).status == "stale"
    assert [e.decision for e in outbox.events] == ["stale"]
    with pytest.raises(BridgeError):
        await svc.approve(proposal.proposal_id)


async def test_change_elsewhere_in_file_keeps_proposal_and_refreshes_diff(repo: Path) -> None:
    svc = service(repo)
    proposal = await svc.submit(args())
    (repo / "agent.py").write_text("import os\n\n" + (repo / "agent.py").read_text())
    assert await svc.recheck(["agent.py"]) == []
    record = svc.get(proposal.proposal_id)
    assert record.status == "pending" and "@@ -2,5 +2,5 @@" in record.diff


async def test_stale_detected_at_approval(repo: Path) -> None:
    outbox = Outbox()
    svc = service(repo, outbox)
    proposal = await svc.submit(args())
    (repo / "agent.py").write_text("gone = 1\n")
    record = await svc.approve(proposal.proposal_id)
    assert record.status == "stale"
    assert git(repo, "branch", "--list", "opik/*") == ""
    assert outbox.events[0].decision == "stale"


async def test_unknown_proposal(repo: Path) -> None:
    svc = service(repo)
    with pytest.raises(BridgeError) as caught:
        await svc.approve("deadbeef")
    assert caught.value.code == ErrorCode.PROPOSAL_NOT_FOUND
    with pytest.raises(BridgeError) as caught:
        await svc.reject("../x")
    assert caught.value.code == ErrorCode.PROPOSAL_NOT_FOUND


async def test_new_file_and_deletion_commit(repo: Path) -> None:
    svc = service(repo)
    proposal = await svc.submit(
        args(
            edits=None,
            diff="--- a/notes.txt\n+++ /dev/null\n@@ -1,3 +0,0 @@\n-one\n-two\n-three\n"
            "--- /dev/null\n+++ b/tests/test_new.py\n@@ -0,0 +1 @@\n+assert True\n",
        )
    )
    record = await svc.approve(proposal.proposal_id)
    changes = git(repo, "diff", "--name-status", f"{record.branch}^", record.branch)
    assert changes.splitlines() == ["D\tnotes.txt", "A\ttests/test_new.py"]
    assert (repo / "notes.txt").exists()


def test_journal_lock_is_exclusive_across_processes(repo: Path) -> None:
    import subprocess
    import sys
    import time

    svc = service(repo)
    with svc.journal.locked():
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys,fcntl,os; fd=os.open(sys.argv[1], os.O_RDWR);"
                "fcntl.flock(fd, fcntl.LOCK_EX|fcntl.LOCK_NB)",
                str(svc.journal.dir / ".lock"),
            ],
            stderr=subprocess.PIPE,
        )
        assert child.wait(10) != 0
    time.sleep(0)
    assert os.path.exists(svc.journal.dir / ".lock")


async def test_file_turned_binary_goes_stale(repo: Path) -> None:
    svc = service(repo)
    proposal = await svc.submit(args())
    (repo / "agent.py").write_bytes(b"\x00\x01binary")
    [stale] = await svc.recheck()
    assert stale.id == proposal.proposal_id and "binary" in (stale.reason or "")


async def test_building_a_fix_runs_none_of_the_users_hooks(repo: Path) -> None:
    marker = repo.parent / "hook-ran.txt"
    for hook in ("post-checkout", "post-commit", "pre-commit", "commit-msg"):
        path = repo / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
        path.chmod(0o755)
    svc = service(repo)
    record = await svc.approve((await svc.submit(args())).proposal_id)
    assert record.status == "applied"
    assert not marker.exists()


async def test_change_against_uncommitted_edits_fails_cleanly(repo: Path) -> None:
    (repo / "agent.py").write_text((repo / "agent.py").read_text().replace("'empty'", "'blank'"))
    outbox = Outbox()
    svc = service(repo, outbox)
    proposal = await svc.submit(
        args(edits=[FileEdit(path="agent.py", old_string="'blank'", new_string="'Ask.'")])
    )
    record = await svc.approve(proposal.proposal_id)
    assert record.status == "failed" and "hunk 1 of 1" in (record.reason or "")
    assert git(repo, "branch", "--list", "opik/*") == ""
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert [(e.decision, e.branch) for e in outbox.events] == [("approved", None)]
    assert "could not be built" in (outbox.events[0].reason or "")


FAKE_KEY = "sk-ant-api03-" + "A1b2C3d4" * 4


def commit_file(repo: Path, name: str, data: str | bytes) -> None:
    path = repo / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    git(repo, "add", "-f", name)
    git(repo, "commit", "-q", "-m", f"add {name}")


async def test_diff_and_closest_quote_reach_the_platform_redacted(repo: Path) -> None:
    commit_file(repo, "settings.py", f'KEY = "{FAKE_KEY}"\nNAME = "bot"\nDEBUG = False\n')
    svc = service(repo)
    edits = [FileEdit(path="settings.py", old_string="DEBUG = False", new_string="DEBUG = True")]
    result = await svc.submit(args(edits=edits))
    assert FAKE_KEY not in result.diff and "[REDACTED:anthropic_key]" in result.diff
    assert FAKE_KEY in svc.get(result.proposal_id).diff, "the local journal keeps it exact"
    with pytest.raises(BridgeError) as caught:
        await svc.submit(
            args(edits=[FileEdit(path="settings.py", old_string='KEY = "sk-x"', new_string="")])
        )
    assert caught.value.code == ErrorCode.MATCH_NOT_FOUND
    body = caught.value.to_body().model_dump_json()
    assert "closest" in caught.value.details and FAKE_KEY not in body


async def test_ignored_files_are_not_proposal_targets(repo: Path) -> None:
    (repo / "debug.log").write_text("one\ntwo\n")
    svc = service(repo)
    for edit in (
        FileEdit(path="debug.log", old_string="one", new_string="uno"),
        FileEdit(path="debug.log", old_string="", new_string="x"),
        FileEdit(path="fresh.log", old_string="", new_string="x"),
    ):
        with pytest.raises(BridgeError) as caught:
            await svc.submit(args(edits=[edit]))
        assert caught.value.code == ErrorCode.FILE_NOT_FOUND
        assert caught.value.message == "file not found (or ignored by git)"
    assert svc.pending() == []


async def test_fifo_is_refused_without_hanging(repo: Path) -> None:
    (repo / "notes.txt").unlink()
    os.mkfifo(repo / "notes.txt")
    with pytest.raises(BridgeError) as caught:
        await service(repo).submit(
            args(edits=[FileEdit(path="notes.txt", old_string="one", new_string="uno")])
        )
    assert caught.value.code == ErrorCode.PERMISSION_DENIED


async def test_files_over_the_cap_are_refused(repo: Path) -> None:
    commit_file(repo, "big.txt", "x = 1\n" * 200_000)
    with pytest.raises(BridgeError) as caught:
        await service(repo).submit(
            args(edits=[FileEdit(path="big.txt", old_string="x = 1\n", new_string="x = 2\n")])
        )
    assert caught.value.code == ErrorCode.LIMIT_REACHED


async def test_symlink_to_an_ignored_file_is_not_followed(repo: Path) -> None:
    (repo / "debug.log").write_text("one\n")
    (repo / "view.txt").symlink_to("debug.log")
    with pytest.raises(BridgeError) as caught:
        await service(repo).submit(
            args(edits=[FileEdit(path="view.txt", old_string="one", new_string="uno")])
        )
    assert caught.value.code == ErrorCode.FILE_NOT_FOUND


async def test_decision_reaches_the_platform_redacted(repo: Path) -> None:
    outbox = Outbox()
    svc = service(repo, outbox)
    proposal = await svc.submit(args())
    await svc.reject(proposal.proposal_id, f"never commit {FAKE_KEY}")
    [event] = outbox.events
    assert FAKE_KEY not in (event.reason or "") and "[REDACTED:" in (event.reason or "")
    assert FAKE_KEY in (svc.get(proposal.proposal_id).reason or "")
