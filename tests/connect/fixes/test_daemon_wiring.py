"""The fixes parts on a real daemon with its embedded platform.

The fixes parts on a real daemon with its embedded platform: ProposeChange and RunSuite from
the platform's RunnerHandle, decisions from the service, the CLI or --auto-approve, and every suite
run reaching the platform's store as a SuiteResult.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fix_flow_testkit import make_refund_project, refund_fix, until
from platform_api_testkit import EmbeddedPlatform, embedded_platform
from rich.console import Console
from suite_testkit import git, make_project

from opik_connect.agent.platform.server import RunnerHandle
from opik_connect.connect.fixes.daemon_wiring import FixParts
from opik_connect.connect.proposals.edit_engine import content_hash, decode_file
from opik_connect.connect.proposals.service import ProposalService
from opik_connect.protocol import (
    BridgeError,
    ErrorCode,
    FilesChanged,
    ProposalDecided,
    RunSuiteArgs,
    SuiteResult,
)

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_ambient_settings")]


@dataclass
class FixesDaemon:
    platform: EmbeddedPlatform
    fixes: FixParts
    runner: RunnerHandle
    events: asyncio.Queue
    output: io.StringIO

    @property
    def service(self) -> ProposalService:
        assert self.fixes.service is not None
        return self.fixes.service


@asynccontextmanager
async def fixes_daemon(
    repo: Path, *, auto_approve: bool = False, terminal: bool = False
) -> AsyncIterator[FixesDaemon]:
    """A real daemon running the fixes parts (no judge) and its platform's events."""
    out = io.StringIO()
    fixes = FixParts(
        auto_approve=auto_approve,
        console=Console(file=out, width=200),
        terminal=terminal,
        judge=None,
        outbox_interval_s=0.1,
    )
    async with embedded_platform(repo, handlers=None, parts=fixes.parts) as p:
        assert p.daemon.platform is not None
        events = p.daemon.platform.event_queue()
        runner = await p.daemon.platform.wait_runner(p.daemon.identity.runner_id)
        yield FixesDaemon(p, fixes, runner, events, out)


async def next_event(events: asyncio.Queue, kind: type, within: float = 30.0):
    async with asyncio.timeout(within):
        while True:
            _, _, event = await events.get()
            if isinstance(event, kind):
                return event


FAKE_KEY = "sk-ant-api03-" + "Q9w8E7r6" * 4
LEAKY_SUITE = f"""
name: leaky
items:
  - {{id: out, data: {{question: "{FAKE_KEY}"}}, assertions: [{{contains: "{FAKE_KEY}!"}}]}}
  - {{id: err, data: {{question: "password=hunter2abc9", mode: raise}}}}
"""


async def test_suite_outputs_and_errors_reach_the_platform_redacted(tmp_path: Path) -> None:
    from opik_connect.connect.suites.run_records import list_records

    repo = make_project(tmp_path, LEAKY_SUITE, name="leaky")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "init")
    async with fixes_daemon(repo) as d:
        result = await d.runner.run_suite(RunSuiteArgs(suite="leaky"))
        reported = await next_event(d.events, SuiteResult)
    for sent in (result.model_dump_json(), reported.run.model_dump_json()):
        assert "[REDACTED:anthropic_key]" in sent and "[REDACTED:secret_value]" in sent
        assert FAKE_KEY not in sent and "hunter2abc9" not in sent
    runs = {item.item_id: item.runs[0] for item in result.items}
    assert "the agent broke" in (runs["err"].error or "")
    [local] = list_records(repo)
    assert FAKE_KEY in local.summary.model_dump_json(), "the local record stays exact"


async def test_propose_approve_and_suite_results_reach_the_platform(tmp_path: Path) -> None:
    repo = make_refund_project(tmp_path / "project")
    async with fixes_daemon(repo) as d:
        runner, events = d.runner, d.events
        before = await runner.run_suite(RunSuiteArgs(suite="refunds"))
        assert (before.status, before.tree) == ("failed", "user")
        reported = await next_event(events, SuiteResult)
        assert (reported.run.run_id, reported.proposal_id) == (before.run_id, None)

        proposed = await runner.propose_change(refund_fix())
        assert [r.id for r in d.service.pending()] == [proposed.proposal_id]
        await d.service.approve(proposed.proposal_id, by="test")

        async with asyncio.timeout(30):
            decided = await runner.wait_decision(proposed.proposal_id)
        assert decided.decision == "approved"
        assert decided.branch and decided.branch.startswith("opik/fix/")
        assert decided.commit and len(decided.commit) == 40
        [after] = decided.suite_results
        assert (after.status, after.tree) == ("passed", decided.branch)
        rerun = await next_event(events, SuiteResult)
        assert (rerun.run.run_id, rerun.proposal_id) == (after.run_id, proposed.proposal_id)

        fix = await d.platform.store.get_fix(proposed.proposal_id)
        assert fix is not None
        assert (fix.branch, fix.commit) == (decided.branch, decided.commit)
        assert (fix.before_run_id, fix.before_status) == (before.run_id, "failed")
        assert (fix.after_run_id, fix.after_status) == (after.run_id, "passed")

        on_branch = await runner.run_suite(RunSuiteArgs(suite="refunds", branch=decided.branch))
        assert (on_branch.status, on_branch.tree) == ("passed", decided.branch)
        again = await next_event(events, SuiteResult)
        assert (again.run.run_id, again.proposal_id) == (on_branch.run_id, proposed.proposal_id)
        fix = await d.platform.store.get_fix(proposed.proposal_id)
        assert fix is not None and fix.after_run_id == on_branch.run_id

    shown = d.output.getvalue()
    assert f"proposal {proposed.proposal_id}: Answer the right refund" in shown
    assert f"proposal {proposed.proposal_id} approved on {decided.branch}" in shown


async def test_a_decision_from_another_process_reaches_the_platform(tmp_path: Path) -> None:
    """No TTY: `opik-connect reject ID` in another terminal; the daemon's outbox delivers it."""
    repo = make_refund_project(tmp_path / "project")
    async with fixes_daemon(repo) as d:
        proposed = await d.runner.propose_change(refund_fix())
        other_terminal = ProposalService.for_project(repo)
        await other_terminal.reject(proposed.proposal_id, "not like this", by="cli")
        async with asyncio.timeout(10):
            decided = await d.runner.wait_decision(proposed.proposal_id)
        assert (decided.decision, decided.reason) == ("rejected", "not like this")
        published = await next_event(d.events, ProposalDecided)
        assert published.proposal_id == proposed.proposal_id


async def test_auto_approve_commits_every_proposal_and_warns(tmp_path: Path) -> None:
    """As `opik-connect --auto-approve` runs it: with the terminal part, here without a TTY."""
    repo = make_refund_project(tmp_path / "project")
    async with fixes_daemon(repo, auto_approve=True, terminal=True) as d:
        proposed = await d.runner.propose_change(refund_fix())
        async with asyncio.timeout(30):
            decided = await d.runner.wait_decision(proposed.proposal_id)
        assert decided.decision == "approved" and decided.branch
        assert [run.status for run in decided.suite_results] == ["passed"]
        await until(lambda: d.service.get(proposed.proposal_id).delivered)
    shown = d.output.getvalue()
    assert "AUTO-APPROVE IS ON" in shown and "No terminal" in shown
    assert f"proposal {proposed.proposal_id} approved on {decided.branch}" in shown


async def test_a_bad_proposal_is_refused_at_once(tmp_path: Path) -> None:
    repo = make_refund_project(tmp_path / "project")
    async with fixes_daemon(repo) as d:
        bad = refund_fix()
        assert bad.edits is not None
        bad.edits[0].old_string = "no such text"
        with pytest.raises(BridgeError) as caught:
            await d.runner.propose_change(bad)
        assert caught.value.code == ErrorCode.MATCH_NOT_FOUND
        assert d.service.pending() == []


AGENT_FILE = "agentpkg/agent.py"


async def test_an_edit_on_disk_that_breaks_the_diff_makes_the_proposal_stale(
    tmp_path: Path,
) -> None:
    """Through the daemon's own watcher, not a direct on_files_changed call."""
    repo = make_refund_project(tmp_path / "project")
    async with fixes_daemon(repo) as d:
        proposed = await d.runner.propose_change(refund_fix())
        agent = repo / AGENT_FILE
        agent.write_text(agent.read_text().replace("20 dollars", "25 dollars"))
        async with asyncio.timeout(15):
            decided = await d.runner.wait_decision(proposed.proposal_id)
        assert decided.decision == "stale"
        assert decided.reason and "no longer applies" in decided.reason
        record = ProposalService.for_project(repo).get(proposed.proposal_id)
        assert (record.status, record.decided_by) == ("stale", "staleness check")
        assert d.service.pending() == []
    assert f"proposal {proposed.proposal_id} (Answer the right refund) is stale" in (
        d.output.getvalue()
    )


async def test_an_edit_that_keeps_the_diff_applicable_leaves_it_pending(tmp_path: Path) -> None:
    """The watcher's recheck re-plans the diff on the new content instead of dropping it."""
    repo = make_refund_project(tmp_path / "project")
    async with fixes_daemon(repo) as d:
        proposed = await d.runner.propose_change(refund_fix())
        agent = repo / AGENT_FILE
        before = d.service.get(proposed.proposal_id).hashes[AGENT_FILE]
        changed = agent.read_text() + "\n\ndef unrelated():\n    return 1\n"
        agent.write_text(changed)
        # the daemon runs its file listeners before it sends the batch on to the platform
        seen = []
        async with asyncio.timeout(15):
            while not (
                isinstance(seen[-1:] and seen[-1], FilesChanged)
                and AGENT_FILE in [c.path for c in seen[-1].changes]
            ):
                seen.append((await d.events.get())[2])
        assert not [e for e in seen if isinstance(e, ProposalDecided)]
        record = d.service.get(proposed.proposal_id)
        assert record.status == "pending"
        now = content_hash(decode_file(AGENT_FILE, changed.encode()))
        assert record.hashes[AGENT_FILE] == now != before
        assert '+    return {"output": "Your refund is 10 dollars"}' in record.diff
        assert [r.id for r in d.service.pending()] == [proposed.proposal_id]
