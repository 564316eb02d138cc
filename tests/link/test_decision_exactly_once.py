"""A decision the daemon cannot deliver at once reaches the platform exactly once.

A decision reaches the platform exactly once when the daemon cannot deliver it at once: a
standalone platform (with its store) outlives two daemons on one project. End to end; the case
of an Ack lost after the platform took the decision is decided by the link sessions and tested
against them (test_link_session.py).
"""

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

from opik_connect.protocol import FileChange, FilesChanged, ProposalDecided

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("state_dir")]


async def test_a_decision_made_while_the_platform_is_down_arrives_once_it_is_back(
    tmp_path: Path,
) -> None:
    repo = make_refund_project(tmp_path / "project")
    async with team_platform(repo) as (platform, services):
        events = platform.event_queue()
        async with linked_daemon(repo, platform) as (runner, service):
            pid = (await runner.propose_change(refund_fix())).proposal_id
            await platform.stop()  # no listener: nothing is acked
            journal = service.journal
            await service.reject(pid, "later", by="test")
            assert journal.get(pid).delivered is False
        await platform.start()  # same port: the daemon's pairing still holds

        second, _ = daemon_on(repo, platform)
        async with second:
            await until(lambda: journal.get(pid).delivered)
            async with asyncio.timeout(5):
                assert (await runner.wait_decision(pid)).reason == "later"
            # Frames arrive in order: once this is acked, any re-sent decision was seen too.
            barrier = FilesChanged(changes=[FileChange(path="x", change="added")])
            await second.send_event("FilesChanged", barrier, wait_ack=True, ack_timeout_s=5)
        published = [event for _, kind, event in _drain(events) if kind == "ProposalDecided"]
        assert published == [ProposalDecided(proposal_id=pid, decision="rejected", reason="later")]
        assert services.store is not None
        [decision] = await services.store.list_decisions()
        assert (decision.decision.proposal_id, decision.decision.decision) == (pid, "rejected")


def _drain(queue: asyncio.Queue) -> list:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items
