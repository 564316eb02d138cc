"""A platform that never acks cannot grow the daemon's memory without bound.

Issue 10 §5: a platform that never acks cannot grow the daemon's memory without bound, and
nobody can hold pairing hostage. The outbox and the caches are bounded in bytes; when the outbox
is full the daemon closes the link with a named reason, and loses no decision.
"""

from __future__ import annotations

import pytest
from fix_flow_testkit import make_refund_project, refund_fix
from link_session_testkit import Wire, ok_result, read_file
from pydantic import BaseModel

from opik_connect.connect.proposals.service import ProposalService
from opik_connect.link.daemon_session import (
    CLOSE_OUTBOX_FULL,
    CloseLink,
    DaemonSession,
    OutboxFull,
)
from opik_connect.protocol import ProposalDecided, canonical_json

KIB = 1024


def never_acked(frame) -> bool:
    return frame.kind == "ack"


def big_result(size: int = 10 * KIB):
    return lambda run: ok_result({"content": "x" * size})


def decision_payload(proposal_id: str) -> str:
    event = ProposalDecided(proposal_id=proposal_id, decision="approved")
    return canonical_json(event.model_dump(mode="json"))


def fill(wire: Wire, commands: int) -> None:
    """The platform sends commands one by one and never acks their results."""
    for n in range(commands):
        wire.platform.call("ReadFile", read_file(f"f{n}"), wire.clock.now)
        wire.settle(lose_to_daemon=never_acked)
        wire.run_commands(big_result())
        wire.settle(lose_to_daemon=never_acked)


def reconnect_and_run(wire: Wire, rounds: int) -> None:
    """Reconnect (the acks flow again), then run what reaches the daemon, `rounds` times over."""
    wire.drop()
    wire.connect()
    wire.settle()
    for _ in range(rounds):
        wire.run_commands(big_result())
        wire.settle()


def test_a_platform_that_never_acks_fills_the_outbox_to_its_budget_then_waits() -> None:
    wire = Wire(daemon=DaemonSession(outbox_max_bytes=100 * KIB))
    wire.connect()
    fill(wire, 30)
    outbox = wire.daemon.outbox
    assert 100 * KIB <= outbox.bytes < 100 * KIB + 11 * KIB  # the budget, plus one result
    assert len(outbox) == 10 and len(wire.daemon.held) == 20  # the rest wait, not run
    assert not any(isinstance(e, CloseLink) for e in wire.from_daemon)
    # Once acks flow (here after a reconnect), the outbox drains and the held commands run.
    reconnect_and_run(wire, rounds=3)
    assert len(wire.finished()) == 30 and not wire.platform.pending
    assert len(wire.daemon.outbox) == 0 and not wire.daemon.held


def test_commands_past_the_queue_bound_on_a_full_outbox_are_not_even_held() -> None:
    wire = Wire(daemon=DaemonSession(outbox_max_bytes=20 * KIB, max_queued=3))
    wire.connect()
    fill(wire, 6)
    assert len(wire.daemon.outbox) == 2 and len(wire.daemon.held) == 3
    assert wire.daemon.outbox.bytes < 20 * KIB + 11 * KIB
    # Nothing is lost: the last command is still pending on the platform and is sent again.
    reconnect_and_run(wire, rounds=3)
    reconnect_and_run(wire, rounds=1)
    assert len(wire.finished()) == 6 and not wire.platform.pending


def test_a_full_outbox_with_no_ack_for_a_while_closes_the_link_with_a_reason() -> None:
    wire = Wire(daemon=DaemonSession(outbox_max_bytes=20 * KIB, ack_stall_s=30.0))
    wire.connect()
    fill(wire, 2)
    assert wire.daemon.outbox.full
    wire.tick(29.0, lose_to_daemon=never_acked)
    assert not any(isinstance(e, CloseLink) for e in wire.from_daemon)
    wire.tick(1.0, lose_to_daemon=never_acked)
    bytes_ = wire.daemon.outbox.bytes
    reason = f"outbox full: {bytes_} bytes unacknowledged, no Ack for 30s"
    assert [e for e in wire.from_daemon if isinstance(e, CloseLink)] == [
        CloseLink(CLOSE_OUTBOX_FULL, reason)
    ]
    wire.tick(60.0, lose_to_daemon=never_acked)  # asked once per connection
    assert len([e for e in wire.from_daemon if isinstance(e, CloseLink)]) == 1
    wire.drop()
    wire.connect()  # a platform that acks again drains it
    wire.settle()
    assert len(wire.daemon.outbox) == 0


def test_a_full_outbox_refuses_new_events_but_keeps_every_decision_it_took() -> None:
    wire = Wire(daemon=DaemonSession(outbox_max_bytes=2 * KIB))
    wire.connect()
    taken = []
    with pytest.raises(OutboxFull, match="outbox full"):
        for n in range(100):
            wire.daemon.queue_event(
                f"ProposalDecided:p{n}", "ProposalDecided", decision_payload(f"p{n}")
            )
            taken.append(f"p{n}")
            wire.settle(lose_to_daemon=never_acked)
    assert 0 < len(taken) < 100
    assert wire.daemon.outbox.bytes < 2 * KIB + 200
    wire.drop()
    wire.connect()
    wire.settle()
    assert sorted(wire.platform.decisions) == sorted(taken)  # every one it took arrives


def test_the_caches_of_acked_results_and_ids_are_bounded_in_bytes() -> None:
    daemon = DaemonSession(done_max_bytes=50 * KIB, acked_ids_max_bytes=2 * KIB)
    wire = Wire(daemon=daemon)
    wire.connect()
    for n in range(40):
        wire.platform.call("RunSuite", read_file(f"f{n}"), wire.clock.now)
        wire.pump()
        wire.run_commands(big_result())
        wire.daemon.queue_event(
            f"event-{n:04d}-" + "i" * 100, "ProposalDecided", decision_payload(f"p{n}")
        )
        wire.settle()
    assert daemon.done.bytes <= 50 * KIB and len(daemon.done) == 4
    assert daemon.acked_events.bytes <= 2 * KIB and len(daemon.acked_events) < 40
    assert len(daemon.outbox) == 0


async def test_a_decision_refused_by_a_full_outbox_stays_in_the_journal_until_it_fits(
    tmp_path, state_dir
) -> None:
    """The link refuses; the proposals journal keeps the decision undelivered and sends it
    again later, under the same event id."""
    repo = make_refund_project(tmp_path / "project")
    link = DaemonSession(outbox_max_bytes=1)
    link.queue_event("filler", "FilesChanged", '{"changes":[]}')  # the outbox is now full

    async def emit(event: BaseModel) -> None:
        assert isinstance(event, ProposalDecided)
        payload = canonical_json(event.model_dump(mode="json"))
        link.queue_event(f"ProposalDecided:{event.proposal_id}", "ProposalDecided", payload)

    service = ProposalService.for_project(repo, emit=emit)
    pid = (await service.submit(refund_fix())).proposal_id
    await service.reject(pid, "no", by="test")
    assert service.journal.get(pid).delivered is False
    assert f"ProposalDecided:{pid}" not in link.outbox

    link = DaemonSession()  # room again (the platform acked, or the daemon restarted)
    assert await service.deliver_outbox() == 1
    assert service.journal.get(pid).delivered is True
    assert f"ProposalDecided:{pid}" in link.outbox


def test_acked_reads_cost_no_memory_and_leave_a_proposal_result_cached() -> None:
    """Thousands of reads after a ProposeChange: the cache holds that one result, and the
    ProposeChange sent again is answered from it, not run twice."""
    wire = Wire()
    wire.connect()
    proposal_id = wire.platform.call("ProposeChange", read_file("fix"), wire.clock.now)
    wire.pump()
    wire.run_commands(big_result(100))
    wire.settle()
    for n in range(2000):
        wire.platform.call("ReadFile", read_file(f"f{n}"), wire.clock.now)
        wire.pump()
        wire.run_commands(big_result())
        wire.settle()
    assert list(wire.daemon.done) == [proposal_id] and wire.daemon.done.bytes < KIB
    assert len(wire.daemon.outbox) == 0
    wire.platform.call("ProposeChange", read_file("fix"), wire.clock.now, command_id=proposal_id)
    wire.settle()
    assert wire.commands_to_run() == []
    resent = [f for f in wire.to_platform if f.kind == "result" and f.id == proposal_id]
    assert len(resent) == 2 and resent[0].payload == resent[1].payload
