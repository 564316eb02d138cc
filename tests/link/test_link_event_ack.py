"""send_event(wait_ack=True): returns on the platform's Ack, gives up (EventNotAcked) on a timeout
or when the link stops; a stable event id reaches the platform's subscribers once."""

from __future__ import annotations

import asyncio

import pytest
from link_testkit import linked

from opik_connect.agent.platform.server import PlatformConnection
from opik_connect.connect.websocket_client import EventNotAcked
from opik_connect.protocol import ProposalDecided

pytestmark = pytest.mark.timeout(30)


def decided(proposal_id: str = "p1") -> ProposalDecided:
    return ProposalDecided(proposal_id=proposal_id, decision="rejected", reason="no")


@pytest.fixture
def drop_acks(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Ids whose Ack the platform swallows (the Ack lost on the way back)."""
    dropped: set[str] = set()
    real_ack = PlatformConnection.ack

    def ack(self: PlatformConnection, msg_id: str) -> None:
        if msg_id not in dropped:
            real_ack(self, msg_id)

    monkeypatch.setattr(PlatformConnection, "ack", ack)
    return dropped


async def test_wait_ack_returns_once_the_platform_acked() -> None:
    async with linked() as (platform, _handle, link):
        events = platform.event_queue()
        event_id = await link.send_event("ProposalDecided", decided(), wait_ack=True)
        assert link.unacked == 0
        _, kind, event = events.get_nowait()  # published before the Ack went out
        assert (kind, event) == ("ProposalDecided", decided())
        assert event_id


async def test_no_ack_in_time_raises_and_keeps_the_event_queued(drop_acks: set[str]) -> None:
    drop_acks.add("decided:p1")
    async with linked() as (_platform, _handle, link):
        with pytest.raises(EventNotAcked, match=r"within 0\.3s"):
            await link.send_event(
                "ProposalDecided",
                decided(),
                event_id="decided:p1",
                wait_ack=True,
                ack_timeout_s=0.3,
            )
        assert link.unacked == 1


async def test_stopping_the_link_fails_a_waiting_sender(drop_acks: set[str]) -> None:
    drop_acks.add("decided:p1")
    async with linked() as (_platform, _handle, link):
        waiting = asyncio.create_task(
            link.send_event("ProposalDecided", decided(), event_id="decided:p1", wait_ack=True)
        )
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await link.stop()
        with pytest.raises(EventNotAcked, match="stopped"):
            await waiting


async def test_a_stable_event_id_reaches_subscribers_once() -> None:
    async with linked() as (platform, _handle, link):
        events = platform.event_queue()
        for _ in range(3):
            await link.send_event(
                "ProposalDecided", decided(), event_id="decided:p1", wait_ack=True
            )
        await link.send_event("ProposalDecided", decided("p2"), wait_ack=True)
        seen = []
        while not events.empty():
            seen.append(events.get_nowait()[2].proposal_id)
        assert seen == ["p1", "p2"]


async def test_the_platform_takes_one_decision_per_proposal_whatever_the_event_id() -> None:
    """A daemon that lost its link's memory re-sends under a new id: still one decision."""
    async with linked() as (platform, handle, link):
        events = platform.event_queue()
        await link.send_event("ProposalDecided", decided(), wait_ack=True)
        await link.send_event(
            "ProposalDecided",
            ProposalDecided(proposal_id="p1", decision="stale"),
            wait_ack=True,
        )
        assert events.qsize() == 1
        assert (await handle.wait_decision("p1")).decision == "rejected"
