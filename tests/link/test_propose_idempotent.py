"""ProposeChange is idempotent per command id, across daemon restarts.

ProposeChange is idempotent per command id, across daemon restarts: the journal records the
command that made each proposal, so a command the platform re-sends gets the same proposal.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fix_flow_testkit import linked_daemon, make_refund_project, refund_fix, team_platform

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


async def test_a_propose_change_resent_to_a_restarted_daemon_makes_no_second_proposal(
    tmp_path: Path,
) -> None:
    """End to end, the command id the platform chose is the one the journal records. After a
    restart the platform re-sends a command under the same id (test_link_session.py), and a new
    service given that id returns the proposal it made before."""
    repo = make_refund_project(tmp_path / "project")
    async with (
        team_platform(repo) as (platform, _services),
        linked_daemon(repo, platform) as (runner, service),
    ):
        made = await runner.propose_change(refund_fix())
        command_id = service.get(made.proposal_id).command_id
    assert command_id is not None and len(command_id) == 32
    restarted = ProposalService.for_project(repo)  # a new process: only the journal remembers
    with serving(command_id):
        again = await restarted.submit(refund_fix())
    assert again.proposal_id == made.proposal_id
    assert [r.id for r in await asyncio.to_thread(restarted.journal.all)] == [made.proposal_id]
