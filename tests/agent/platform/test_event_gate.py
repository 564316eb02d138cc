"""A platform with an event gate (as replicas set): a decision is acked only once it is kept."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from link_testkit import RawDaemon

from opik_connect.agent.platform.server import Platform, RunnerHandle
from opik_connect.link.auth import new_activation_key
from opik_connect.protocol import Ack, FileChange, FilesChanged, ProposalDecided

pytestmark = pytest.mark.timeout(30)

DECIDED = ProposalDecided(proposal_id="p1", decision="approved")
TOUCHED = FilesChanged(changes=[FileChange(path="a.py", change="modified")])


class Gate:
    """Admits events once opened; fails the first `failures` decisions it is asked about."""

    def __init__(self, failures: int = 0) -> None:
        self.open = asyncio.Event()
        self.failures = failures
        self.asked: list[str] = []

    async def __call__(self, runner: RunnerHandle, type_name: str, event: object) -> bool:
        self.asked.append(type_name)
        await self.open.wait()
        if type_name == "ProposalDecided" and self.failures:
            self.failures -= 1
            raise ConnectionError("the shared store is unreachable")
        return True


async def next_ack(raw: RawDaemon) -> list[str]:
    while True:
        frame = await raw.recv()
        if frame.kind == "ack":
            return Ack.model_validate(frame.payload).ids


async def test_a_gated_decision_is_acked_once_kept_and_other_events_at_once() -> None:
    gate = Gate()
    async with Platform() as platform:
        platform.event_gate = gate
        seen = platform.event_queue()
        raw = await RawDaemon.connect(platform, platform.pre_pair("r1", new_activation_key()))
        await raw.send("event", "ProposalDecided", DECIDED.model_dump(mode="json"), "d1")
        await raw.send("event", "FilesChanged", TOUCHED.model_dump(mode="json"), "f1")
        first = await next_ack(raw)
        gate.open.set()
        second = await next_ack(raw)
        kinds = [(await seen.get())[1] for _ in range(2)]
        await raw.ws.close()

    assert (first, second) == (["f1"], ["d1"])
    assert kinds == ["ProposalDecided", "FilesChanged"]  # one runner's events stay in order


async def test_a_decision_the_gate_could_not_keep_is_taken_from_the_next_copy() -> None:
    gate = Gate(failures=1)
    gate.open.set()
    async with Platform() as platform:
        platform.event_gate = gate
        seen = platform.event_queue()
        raw = await RawDaemon.connect(platform, platform.pre_pair("r1", new_activation_key()))
        await raw.send("event", "ProposalDecided", DECIDED.model_dump(mode="json"), "d1")
        await raw.send("event", "FilesChanged", TOUCHED.model_dump(mode="json"), "f1")
        # FilesChanged is gated after the decision: once it is out, the failure was settled.
        kinds = [(await seen.get())[1]]
        unkept = await next_ack(raw)
        # The daemon still holds the decision (never acked): it sends it again, same id.
        await raw.send("event", "ProposalDecided", DECIDED.model_dump(mode="json"), "d1")
        kept = await next_ack(raw)
        kinds.append((await seen.get())[1])
        await raw.ws.close()

    assert (unkept, kept) == (["f1"], ["d1"])
    assert gate.asked == ["ProposalDecided", "FilesChanged", "ProposalDecided"]
    assert kinds == ["FilesChanged", "ProposalDecided"]


async def test_without_a_gate_a_decision_is_acked_at_once() -> None:
    async with Platform() as platform:
        raw = await RawDaemon.connect(
            platform, platform.pre_pair(uuid.uuid4().hex, new_activation_key())
        )
        await raw.send("event", "ProposalDecided", DECIDED.model_dump(mode="json"), "d1")
        acked = await next_ack(raw)
        await raw.ws.close()

    assert acked == ["d1"]
