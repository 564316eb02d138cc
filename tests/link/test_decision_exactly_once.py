"""A decision reaches the platform exactly once when the daemon stops between sending it and the
platform's Ack: a standalone platform (with its store) outlives two daemons on one project."""

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
from opik_connect.protocol import ProposalDecided

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("state_dir")]


@pytest.fixture
def swallowed_acks(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Event types whose Ack the platform never sends (lost on the way back)."""
    types: set[str] = set()
    real_dispatch = Platform._dispatch

    async def dispatch(self: Platform, handle, conn: PlatformConnection, frame):
        if frame.type in types:
            real_ack = conn.ack
            conn.ack = lambda msg_id: None  # type: ignore[method-assign]
            try:
                return await real_dispatch(self, handle, conn, frame)
            finally:
                conn.ack = real_ack  # type: ignore[method-assign]
        return await real_dispatch(self, handle, conn, frame)

    monkeypatch.setattr(Platform, "_dispatch", dispatch)
    return types


async def test_a_decision_whose_ack_was_lost_is_delivered_once_after_restart(
    tmp_path: Path, swallowed_acks: set[str]
) -> None:
    repo = make_refund_project(tmp_path / "project")
    async with team_platform(repo) as (platform, services):
        events = platform.event_queue()
        async with linked_daemon(repo, platform) as (runner, service):
            proposed = await runner.propose_change(refund_fix())
            pid = proposed.proposal_id
            swallowed_acks.add("ProposalDecided")
            journal = service.journal
            await service.reject(pid, "wrong file", by="test")
            async with asyncio.timeout(10):
                assert (await runner.wait_decision(pid)).decision == "rejected"
            await asyncio.sleep(1.0)  # the outbox retries; the Ack never comes
            assert journal.get(pid).delivered is False
        swallowed_acks.clear()

        second, _ = daemon_on(repo, platform)
        async with second:
            await until(lambda: journal.get(pid).delivered)

        published = []
        while not events.empty():
            _, kind, event = events.get_nowait()
            if kind == "ProposalDecided":
                published.append(event)
        assert published == [
            ProposalDecided(proposal_id=pid, decision="rejected", reason="wrong file")
        ]
        assert services.store is not None
        [decision] = await services.store.list_decisions()
        assert (decision.decision.proposal_id, decision.decision.decision) == (pid, "rejected")


async def test_a_decision_made_while_the_platform_is_down_arrives_once_it_is_back(
    tmp_path: Path,
) -> None:
    repo = make_refund_project(tmp_path / "project")
    async with team_platform(repo) as (platform, _services):
        events = platform.event_queue()
        async with linked_daemon(repo, platform) as (runner, service):
            pid = (await runner.propose_change(refund_fix())).proposal_id
            await platform.stop()  # no listener: nothing is acked
            journal = service.journal
            await service.reject(pid, "later", by="test")
            await asyncio.sleep(0.5)
            assert journal.get(pid).delivered is False
        await platform.start()  # same port: the daemon's pairing still holds

        second, _ = daemon_on(repo, platform)
        async with second:
            await until(lambda: journal.get(pid).delivered)
            async with asyncio.timeout(5):
                assert (await runner.wait_decision(pid)).reason == "later"
            await asyncio.sleep(0.3)  # room for a duplicate to show up
        kinds = [events.get_nowait()[1] for _ in range(events.qsize())]
        assert kinds.count("ProposalDecided") == 1
