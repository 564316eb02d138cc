"""ProposeChange is idempotent per command id, across daemon restarts: the journal records the
command that made each proposal, so a command the platform re-sends gets the same proposal."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fix_flow_testkit import (
    daemon_on,
    linked_daemon,
    make_refund_project,
    refund_fix,
    team_platform,
    until,
)

from opik_connect.agent.platform.server import Platform, PlatformConnection
from opik_connect.connect.proposals.command_id import current_command_id, serving
from opik_connect.connect.proposals.service import ProposalService

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("state_dir")]


async def test_the_same_command_id_returns_the_same_proposal(tmp_path: Path) -> None:
    repo = make_refund_project(tmp_path / "project")
    service = ProposalService.for_project(repo)
    with serving("cmd-1"):
        first = await service.submit(refund_fix())
        assert current_command_id.get() == "cmd-1"
        again = await service.submit(refund_fix("a different title, same command"))
    assert current_command_id.get() is None
    assert again == first
    assert service.get(first.proposal_id).command_id == "cmd-1"

    await service.reject(first.proposal_id, "no")
    with serving("cmd-1"):  # decided since: still the same proposal, none new
        assert (await service.submit(refund_fix())).proposal_id == first.proposal_id
    assert [r.id for r in service.journal.all()] == [first.proposal_id]

    with serving("cmd-2"):
        other = await service.submit(refund_fix())
    untracked = await service.submit(refund_fix())
    ids = {first.proposal_id, other.proposal_id, untracked.proposal_id}
    assert len(ids) == 3


@pytest.fixture
def lost_results(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Command types whose results the platform drops (lost when the daemon died)."""
    types: set[str] = set()
    real_dispatch = Platform._dispatch

    async def dispatch(self: Platform, handle, conn: PlatformConnection, frame):
        if frame.kind == "result" and frame.type in types:
            return None
        return await real_dispatch(self, handle, conn, frame)

    monkeypatch.setattr(Platform, "_dispatch", dispatch)
    return types


async def test_a_propose_change_resent_to_a_restarted_daemon_makes_no_second_proposal(
    tmp_path: Path, lost_results: set[str]
) -> None:
    repo = make_refund_project(tmp_path / "project")
    async with team_platform(repo) as (platform, _services):
        lost_results.add("ProposeChange")
        async with linked_daemon(repo, platform) as (runner, service):
            call = asyncio.create_task(runner.propose_change(refund_fix()))
            journal = service.journal
            await until(journal.all)
            [made] = await asyncio.to_thread(journal.all)
            await asyncio.sleep(0.2)
            assert not call.done()  # the platform never saw the result
        lost_results.clear()

        second, _ = daemon_on(repo, platform)
        async with second:  # the platform re-sends the pending command on reconnect
            async with asyncio.timeout(20):
                result = await call
        assert result.proposal_id == made.id
        assert [r.id for r in await asyncio.to_thread(journal.all)] == [made.id]
