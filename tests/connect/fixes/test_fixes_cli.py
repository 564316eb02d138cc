"""`opik-connect fixes|approve|reject` as real subprocesses over a real repo and journal."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from proposal_fixtures import git, snapshot
from typer.testing import CliRunner

from opik_connect.cli import app
from opik_connect.connect.proposals.service import ProposalService
from opik_connect.connect.suites.run_records import USER_TREE, RunRecord, save_record
from opik_connect.protocol import (
    BridgeError,
    ErrorCode,
    FileEdit,
    ItemResult,
    ProposeChangeArgs,
    SuiteRunSummary,
)

pytestmark = pytest.mark.timeout(60)


def cli(repo: Path, *args: str, columns: int = 200) -> subprocess.CompletedProcess[str]:
    """In-process, for speed; the same typer commands the console script registers."""
    result = CliRunner().invoke(app, [*args, "--root", str(repo)], env={"COLUMNS": str(columns)})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def real_cli(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "opik_connect.cli", *args],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def propose(repo: Path, title: str = "Polite empty answer", **edit: str) -> str:
    edit = {
        "path": "agent.py",
        "old_string": "return 'empty'",
        "new_string": "return 'Hi.'",
        **edit,
    }
    args = ProposeChangeArgs(
        title=title, reason="why", trace_id="trace-7", edits=[FileEdit(**edit)]
    )
    return asyncio.run(ProposalService.for_project(repo).submit(args)).proposal_id


def test_pending_approve_list_show(repo: Path) -> None:
    proposal = propose(repo)
    listed = cli(repo, "fixes", "--pending")
    assert proposal in listed.stdout and "agent.py (+1 \u22121)" in listed.stdout
    done = cli(repo, "approve", proposal)
    assert done.returncode == 0, done.stderr
    branch = f"opik/fix/{proposal}-polite-empty-answer"
    assert branch in done.stdout
    assert git(repo, "branch", "--list", "--format=%(refname:short)", branch) == branch
    assert "No proposals waiting" in cli(repo, "fixes", "--pending").stdout
    fixes = cli(repo, "fixes")
    assert proposal in fixes.stdout and "trace-7" in fixes.stdout and "active" in fixes.stdout
    shown = cli(repo, "fixes", "show", proposal)
    assert "+        return 'Hi.'" in shown.stdout and branch in shown.stdout
    again = cli(repo, "approve", proposal)
    assert again.returncode == 1 and "already applied" in again.stderr


def test_reject_with_reason_and_unknown_id(repo: Path) -> None:
    proposal = propose(repo)
    done = cli(repo, "reject", proposal, "--reason", "wrong file")
    assert done.returncode == 0, done.stderr
    record = ProposalService.for_project(repo).get(proposal)
    assert (record.status, record.reason, record.decided_by) == ("rejected", "wrong file", "cli")
    missing = cli(repo, "approve", "0000beef")
    assert missing.returncode == 2 and "proposal_not_found" in missing.stderr


def test_cli_decision_reaches_running_daemon_once(repo: Path) -> None:
    proposal = propose(repo)
    events = []

    async def emit(event) -> None:
        events.append(event)

    daemon = ProposalService.for_project(repo, emit=emit)
    rejecter = real_cli(repo, "reject", proposal, "--reason", "no")
    assert rejecter.wait(30) == 0, rejecter.stderr.read() if rejecter.stderr else ""

    async def pump() -> None:
        task = asyncio.create_task(daemon.run_outbox(interval_s=0.05))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if events:
                break
        await asyncio.sleep(0.2)
        task.cancel()

    asyncio.run(pump())
    assert [(e.proposal_id, e.decision, e.reason) for e in events] == [(proposal, "rejected", "no")]


def test_concurrent_approvals_claim_once(repo: Path) -> None:
    proposal = propose(repo)
    procs = [real_cli(repo, "approve", proposal) for _ in range(2)]
    codes = sorted(p.wait(30) for p in procs)
    assert codes == [0, 1]
    assert len(git(repo, "branch", "--list", "opik/fix/*").splitlines()) == 1


def test_merge_refuses_dirty_then_merges(repo: Path) -> None:
    proposal = propose(repo)
    assert cli(repo, "approve", proposal).returncode == 0
    (repo / "notes.txt").write_text("dirty\n")
    before = snapshot(repo)
    refused = cli(repo, "fixes", "merge", proposal)
    assert refused.returncode == 1 and "uncommitted changes" in refused.stderr
    assert snapshot(repo) == before
    git(repo, "checkout", "--", "notes.txt")
    merged = cli(repo, "fixes", "merge", proposal)
    assert merged.returncode == 0, merged.stderr
    assert "Hi." in (repo / "agent.py").read_text()
    assert "merged" in cli(repo, "fixes").stdout


def test_drop_refuses_unmerged_without_force(repo: Path) -> None:
    proposal = propose(repo)
    assert cli(repo, "approve", proposal).returncode == 0
    refused = cli(repo, "fixes", "drop", proposal)
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert git(repo, "branch", "--list", "opik/fix/*") != ""
    dropped = cli(repo, "fixes", "drop", proposal, "--force")
    assert dropped.returncode == 0, dropped.stderr
    assert git(repo, "branch", "--list", "opik/fix/*") == ""
    assert "dropped" in cli(repo, "fixes").stdout


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("../outside.py", ErrorCode.PATH_TRAVERSAL),
        ("/etc/passwd", ErrorCode.PATH_TRAVERSAL),
        (".env", ErrorCode.SENSITIVE_PATH),
        ("config/secrets.yaml", ErrorCode.SENSITIVE_PATH),
        ("private/notes.md", ErrorCode.SENSITIVE_PATH),
        ("escape/x.py", ErrorCode.PATH_TRAVERSAL),
        ("link_to_env", ErrorCode.SENSITIVE_PATH),
    ],
)
def test_proposal_paths_go_through_the_sandbox(repo: Path, tmp_path: Path, path, code) -> None:
    (repo / "pyproject.toml").write_text('[tool.opik-connect]\ndeny = ["private/"]\n')
    (tmp_path / "elsewhere").mkdir()
    (repo / "escape").symlink_to(tmp_path / "elsewhere")
    (repo / ".env").write_text("KEY=1\n")
    (repo / "link_to_env").symlink_to(repo / ".env")
    with pytest.raises(BridgeError) as caught:
        propose(repo, path=path, old_string="", new_string="x = 1\n")
    assert caught.value.code == code


LONG_TITLE = "Keep the help articles in the prompt when an order is looked up"


def record_run(
    repo: Path, run_id: str, status: str, passed: int, *, tree: str = USER_TREE, proposal=None
) -> SuiteRunSummary:
    """A suite run as the runner records it; run ids double as start times (seconds)."""
    summary = SuiteRunSummary(
        run_id=run_id,
        suite="support-qa",
        status=status,
        commit="c0ffee1234567890",
        tree=tree,
        items=[
            ItemResult(
                item_id=f"i{n}", passed=n < passed, runs_passed=1, runs_needed=1, runs_total=1
            )
            for n in range(2)
        ],
        started_at=f"2026-11-25T10:00:{run_id[-2:]}+00:00",
        duration_s=1.5,
        judge="none",
    )
    branch = None if tree == USER_TREE else tree
    save_record(
        repo, RunRecord(summary=summary, tree_path=str(repo), branch=branch, proposal_id=proposal)
    )
    return summary


def approved_fix_with_runs(repo: Path) -> tuple[str, str]:
    """A fix whose suite failed on the user's tree before it and passed on its branch after."""
    proposal = propose(repo, title=LONG_TITLE)
    record_run(repo, "run-01", "error", 0)
    record_run(repo, "run-02", "failed", 1)
    assert cli(repo, "approve", proposal).returncode == 0
    service = ProposalService.for_project(repo)
    branch = service.get(proposal).branch
    after = record_run(repo, "run-03", "passed", 2, tree=branch, proposal=proposal)
    record_run(repo, "run-04", "error", 0)
    service.journal.update(proposal, lambda r: r.suite_results.append(after))
    return proposal, branch


def test_fixes_list_is_readable_when_piped_at_80_columns(repo: Path) -> None:
    proposal, branch = approved_fix_with_runs(repo)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    listing = real_cli(repo, "fixes", env=env)
    out, errors = listing.communicate(timeout=30)
    assert listing.returncode == 0, errors
    for value in (proposal, branch, LONG_TITLE, "trace-7", "active"):
        assert value in out
    assert "support-qa: passed (2/2 items passed)" in out


@pytest.mark.parametrize("columns", [60, 80])
def test_fixes_list_keeps_every_field_in_narrow_terminals(repo: Path, columns: int) -> None:
    proposal, branch = approved_fix_with_runs(repo)
    pending = propose(repo, title="Second fix", path="other.py", old_string="", new_string="x\n")
    shown = cli(repo, "fixes", columns=columns).stdout
    for value in (proposal, branch, "trace-7", "active", "passed (2/2 items passed)"):
        assert value in shown
    assert LONG_TITLE.split()[0] in shown and pending not in shown
    waiting = cli(repo, "fixes", "--pending", columns=columns).stdout
    assert pending in waiting and "other.py (+1 \u22120)" in waiting and "trace-7" in waiting


def test_fixes_show_gives_before_and_after(repo: Path) -> None:
    proposal, branch = approved_fix_with_runs(repo)
    assert branch.endswith("-keep-the-help-articles-in-the-prompt")
    shown = cli(repo, "fixes", "show", proposal, columns=80).stdout
    assert "support-qa: failed (1/2 items passed) \u2192 passed (2/2 items passed)" in shown
    assert "run run-02 on your tree at c0ffee1234" in shown
    assert "run run-03 on the fix branch" in shown
    assert "run-01" not in shown and "run-04" not in shown and "error" not in shown
    assert all(len(line) <= 80 for line in shown.splitlines() if "run-0" in line)


def test_fixes_show_without_a_user_tree_run_before(repo: Path) -> None:
    proposal = propose(repo)
    assert cli(repo, "approve", proposal).returncode == 0
    shown = cli(repo, "fixes", "show", proposal).stdout
    assert "No suite runs." in shown
    branch = ProposalService.for_project(repo).get(proposal).branch
    record_run(repo, "run-05", "passed", 2, tree=branch, proposal=proposal)
    shown = cli(repo, "fixes", "show", proposal).stdout
    assert "support-qa: no run \u2192 passed (2/2 items passed)" in shown
    assert "no run of this suite on your tree before the fix" in shown
