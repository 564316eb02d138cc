"""send_event(wait_ack=True) end to end: acked, timed out, refused, delivered once.

send_event(wait_ack=True): returns on the platform's Ack, gives up (EventNotAcked) on a timeout
or when the link stops, refuses at once (OutboxFull) when the outbox is at its byte budget; a
stable event id reaches the platform's subscribers once. End to end, over real websockets.
"""

from __future__ import annotations

import asyncio

import pytest
from link_testkit import linked, silent_link

from opik_connect.connect.websocket_client import EventNotAcked, OutboxFull
from opik_connect.link.daemon_session import CLOSE_OUTBOX_FULL
from opik_connect.protocol import FileChange, FilesChanged, ProposalDecided

pytestmark = pytest.mark.timeout(30)


def decided(proposal_id: str = "p1") -> ProposalDecided:
    return ProposalDecided(proposal_id=proposal_id, decision="rejected", reason="no")


async def test_wait_ack_returns_once_the_platform_acked() -> None:
    async with linked() as (platform, _handle, link):
        events = platform.event_queue()
        event_id = await link.send_event("ProposalDecided", decided(), wait_ack=True)
        assert link.unacked == 0
        _, kind, event = events.get_nowait()  # published before the Ack went out
        assert (kind, event) == ("ProposalDecided", decided())
        assert event_id


async def test_no_ack_in_time_raises_and_keeps_the_event_queued() -> None:
    async with silent_link() as (platform, link):
        with pytest.raises(EventNotAcked, match=r"within 0\.3s"):
            await link.send_event(
                "ProposalDecided",
                decided(),
                event_id="decided:p1",
                wait_ack=True,
                ack_timeout_s=0.3,
            )
        assert link.unacked == 1
        assert (await platform.frames.get()).id == "decided:p1"


async def test_stopping_the_link_fails_a_waiting_sender() -> None:
    async with silent_link() as (platform, link):
        waiting = asyncio.create_task(
            link.send_event("ProposalDecided", decided(), event_id="decided:p1", wait_ack=True)
        )
        assert (await platform.frames.get()).id == "decided:p1"  # it arrived; no Ack comes
        assert not waiting.done()
        await link.stop()
        with pytest.raises(EventNotAcked, match="stopped"):
            await waiting


async def test_a_full_outbox_refuses_a_decision_at_once_and_drops_a_best_effort_event() -> None:
    async with silent_link(outbox_max_bytes=1) as (platform, link):
        await link.send_event("ProposalDecided", decided(), event_id="decided:p1")
        assert link.unacked == 1
        with pytest.raises(OutboxFull, match="outbox full"):
            await link.send_event("ProposalDecided", decided("p2"), wait_ack=True)
        change = FilesChanged(changes=[FileChange(path="a.py", change="added")])
        await link.send_event("FilesChanged", change)  # dropped with a warning
        assert link.unacked == 1
        assert (await platform.frames.get()).id == "decided:p1"
        assert platform.frames.empty()


async def test_a_platform_that_stops_acking_a_full_outbox_gets_the_link_closed() -> None:
    details: asyncio.Queue[str] = asyncio.Queue()
    async with silent_link(
        outbox_max_bytes=1,
        ack_stall_s=0.2,
        backoff_initial_s=5,
        on_state=lambda state, detail: details.put_nowait(detail),
    ) as (platform, link):
        await link.send_event("ProposalDecided", decided(), event_id="decided:p1")
        assert await asyncio.wait_for(platform.closes.get(), 5) == CLOSE_OUTBOX_FULL
        async with asyncio.timeout(5):
            while "outbox full" not in (detail := await details.get()):
                pass
        assert "no Ack for 0.2s" in detail and "retrying in" in detail
        assert link.unacked == 1  # kept for the next connection


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
