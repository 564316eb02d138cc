"""The link's reliability, decided by its sans-I/O sessions: frames fed in, a fake clock advanced.

Exactly-once results and decisions, idempotent commands, event acks, resume after a drop, replay
refusal, heartbeats and timeouts. No sockets, no sleeps: a Wire joins a daemon session and a
platform session in memory and moves (or loses) frames when pumped.
"""

from __future__ import annotations

import pytest
from link_session_testkit import KEY, Wire, ok_result, read_file

from opik_connect.link.auth import FrameSigner
from opik_connect.link.daemon_session import (
    CancelCommand,
    DaemonSession,
    EventAcked,
    RunCommand,
)
from opik_connect.link.platform_session import ACK_DELAY_S, EventReceived, PlatformSession
from opik_connect.protocol import (
    MAX_FRAME_BYTES,
    ErrorCode,
    FileChange,
    FilesChanged,
    FrameError,
    ProposalDecided,
    canonical_json,
)


def decided(proposal_id: str = "p1", decision: str = "rejected") -> ProposalDecided:
    return ProposalDecided(proposal_id=proposal_id, decision=decision, reason="no")  # type: ignore[arg-type]


def queue(wire: Wire, event_id: str, event: ProposalDecided | FilesChanged) -> bool:
    payload = canonical_json(event.model_dump(mode="json"))
    return wire.daemon.queue_event(event_id, type(event).__name__, payload)


def received(wire: Wire) -> list[EventReceived]:
    return [e for e in wire.from_platform if isinstance(e, EventReceived)]


def one_command_done(type_name: str = "ReadFile") -> tuple[Wire, str]:
    """A connected wire on which one command was run, answered and acked; and its id."""
    wire = Wire()
    wire.connect()
    command_id = wire.platform.call(type_name, read_file("a.py"), wire.clock.now)
    wire.pump()
    wire.run_commands()
    wire.settle()
    return wire, command_id


def test_a_command_is_run_once_and_its_result_delivered_once() -> None:
    wire, command_id = one_command_done()
    [finished] = wire.finished()
    assert (finished.command_id, finished.outcome.result) == (command_id, {"content": "a.py"})
    assert len(wire.daemon.outbox) == 0  # acked
    assert not wire.platform.pending


def test_a_result_lost_in_a_drop_is_resent_on_reconnect_and_delivered_once() -> None:
    wire = Wire()
    wire.connect()
    command_id = wire.platform.call("ReadFile", read_file("slow"), wire.clock.now)
    wire.pump()
    [run] = wire.commands_to_run()
    wire.drop()  # mid-command
    wire.daemon.command_started(run.command_id, wire.clock.now)
    wire.daemon.command_done(run.command_id, ok_result({"content": "slow"}))
    assert len(wire.daemon.outbox) == 1  # kept for the next connection
    wire.connect()  # the platform re-sends the command, the daemon re-sends the result
    wire.settle()
    assert [f.command_id for f in wire.finished()] == [command_id]
    assert wire.commands_to_run() == []  # never run twice
    results = [f for f in wire.to_platform if f.kind == "result"]
    assert len(results) == 2  # re-sent from the outbox, and again for the re-sent command
    assert len(wire.daemon.outbox) == 0


def test_a_command_resent_while_it_runs_attaches_to_it() -> None:
    wire = Wire()
    wire.connect()
    wire.platform.call("ReadFile", read_file("slow"), wire.clock.now)
    wire.pump()
    [run] = wire.commands_to_run()
    wire.drop()
    wire.connect()
    wire.pump()
    assert [f.type for f in wire.to_daemon if f.kind == "command"] == ["ReadFile", "ReadFile"]
    assert wire.commands_to_run() == []
    wire.daemon.command_done(run.command_id, ok_result({"content": "slow"}))
    wire.settle()
    assert len(wire.finished()) == 1


@pytest.mark.parametrize("type_name", ["ProposeChange", "RunSuite", "SomeFutureCommand"])
def test_an_acked_command_with_effects_sent_again_is_answered_from_the_cache(
    type_name: str,
) -> None:
    """A replica re-routing it after a failover, say: it is never run twice."""
    wire, command_id = one_command_done(type_name)
    assert command_id in wire.daemon.done
    wire.platform.call(type_name, read_file("a.py"), wire.clock.now, command_id=command_id)
    wire.settle()
    assert wire.commands_to_run() == []
    results = [f for f in wire.to_platform if f.kind == "result"]
    assert [f.id for f in results] == [command_id, command_id]
    assert results[0].payload == results[1].payload
    assert len(wire.finished()) == 1  # the platform delivers the first result for an id only


@pytest.mark.parametrize("type_name", ["ReadFile", "ListFiles", "SearchFiles"])
def test_an_acked_read_is_not_kept_and_runs_again_if_sent_again(type_name: str) -> None:
    """Running a read twice is harmless: its result costs no memory once acked."""
    wire, command_id = one_command_done(type_name)
    assert command_id not in wire.daemon.done and len(wire.daemon.outbox) == 0
    wire.platform.call(type_name, read_file("a.py"), wire.clock.now, command_id=command_id)
    wire.pump()
    assert [run.command_id for run in wire.commands_to_run()] == [command_id]


def test_a_command_resent_to_a_restarted_daemon_keeps_its_id() -> None:
    """The daemon died before its result left: the platform re-sends the same command id, so
    a command that is idempotent per id (ProposeChange, through its journal) makes nothing new."""
    wire = Wire()
    wire.connect()
    command_id = wire.platform.call("ProposeChange", {"title": "t"}, wire.clock.now)
    wire.pump()
    [first] = wire.commands_to_run()
    wire.restart_daemon()
    wire.connect()
    wire.pump()
    [second] = wire.commands_to_run()
    assert first.command_id == second.command_id == command_id
    assert first.payload == second.payload


def test_commands_sent_while_the_daemon_is_away_go_out_when_it_connects() -> None:
    wire = Wire()
    command_id = wire.platform.call("ReadFile", read_file("later"), wire.clock.now)
    assert not wire.platform.has_data_to_send
    wire.connect()
    wire.pump()
    assert [run.command_id for run in wire.commands_to_run()] == [command_id]


def test_commands_beyond_the_queue_bound_get_limit_reached() -> None:
    wire = Wire(daemon=DaemonSession(max_queued=1))
    wire.connect()
    wire.platform.call("ReadFile", read_file("one"), wire.clock.now)
    refused = wire.platform.call("ReadFile", read_file("two"), wire.clock.now)
    wire.pump()
    assert len(wire.commands_to_run()) == 1
    [finished] = wire.finished()
    assert finished.command_id == refused
    assert finished.outcome.error is not None
    assert finished.outcome.error.code == ErrorCode.LIMIT_REACHED


def test_an_event_stays_queued_until_acked_and_is_resent_after_a_drop() -> None:
    wire = Wire()
    wire.connect()
    assert queue(wire, "e1", decided())
    wire.pump()
    assert len(wire.daemon.outbox) == 1  # acks are batched: none yet
    wire.tick(ACK_DELAY_S - 0.001)
    assert len(wire.daemon.outbox) == 1
    wire.tick(0.001, lose_to_daemon=lambda frame: frame.kind == "ack")  # the Ack is lost
    assert len(wire.daemon.outbox) == 1 and len(received(wire)) == 1
    wire.drop()
    wire.connect()
    wire.settle()
    assert len(wire.daemon.outbox) == 0
    assert EventAcked("e1") in wire.from_daemon
    assert [e.event for e in received(wire)] == [decided()]  # re-sent, delivered once
    assert not queue(wire, "e1", decided())  # acked before: nothing to send


def test_a_decision_whose_ack_was_lost_is_taken_once_after_the_daemon_restarts() -> None:
    wire = Wire()
    wire.connect()
    queue(wire, "ProposalDecided:p1", decided())
    wire.settle(lose_to_daemon=lambda frame: frame.kind == "ack")
    wire.restart_daemon()  # its journal sends the decision again, under the same id
    wire.connect()
    queue(wire, "ProposalDecided:p1", decided())
    wire.settle()
    assert len(wire.daemon.outbox) == 0
    queue(wire, "a-new-id", decided(decision="stale"))  # a daemon that lost every memory
    wire.settle()
    assert [e.event for e in received(wire)] == [decided()]
    assert wire.platform.decisions["p1"] == decided()


def test_events_queued_while_disconnected_go_out_in_order_on_connect() -> None:
    wire = Wire()
    change = FilesChanged(changes=[FileChange(path="a.py", change="modified")])
    queue(wire, "e1", change)
    queue(wire, "e2", decided())
    assert not wire.daemon.has_data_to_send
    wire.connect()
    wire.settle()
    assert [e.event for e in received(wire)] == [change, decided()]
    assert len(wire.daemon.outbox) == 0


def test_a_replayed_or_foreign_command_is_refused_and_not_run() -> None:
    wire = Wire()
    wire.connect()
    wire.platform.call("ReadFile", read_file("a.py"), wire.clock.now)
    [text] = wire.platform.data_to_send()
    wire.daemon.receive(text, wire.clock.now)
    wire.daemon.receive(text, wire.clock.now)  # replayed
    other = FrameSigner(KEY, "elsewhere.conn").seal_text("command", "ReadFile", "c9", {})
    wire.daemon.receive(other, wire.clock.now)  # signed for another connection
    wire.pump()
    assert len(wire.commands_to_run()) == 1
    errors = [FrameError.model_validate(f.payload) for f in wire.to_platform if f.kind == "error"]
    assert [e.error.code for e in errors] == [ErrorCode.AUTH_FAILED] * 2
    assert "replayed" in errors[0].error.message and "bad signature" in errors[1].error.message


def test_a_replayed_event_is_refused_by_the_platform() -> None:
    wire = Wire()
    wire.connect()
    queue(wire, "e1", decided())
    texts = wire.daemon.data_to_send()
    heartbeat, event = texts
    for text in (heartbeat, event, event):
        wire.platform.receive(text, wire.clock.now)
    wire.pump()
    assert len(received(wire)) == 1
    [error] = [f for f in wire.to_daemon if f.kind == "error"]
    assert FrameError.model_validate(error.payload).error.code == ErrorCode.AUTH_FAILED


def test_heartbeats_go_out_on_connect_and_every_interval() -> None:
    wire = Wire(heartbeat_interval_s=5.0)
    wire.connect()
    start = wire.clock.now
    wire.pump()
    wire.tick(4.9)
    assert wire.platform.last_heartbeat == start
    wire.tick(0.1)
    assert wire.platform.last_heartbeat == start + 5.0
    beats = [f for f in wire.to_platform if f.type == "Heartbeat"]
    assert [f.payload["sent_at"] for f in beats] == [start, start + 5.0]
    assert wire.daemon.next_deadline() == start + 10.0
    wire.drop()
    assert wire.daemon.next_deadline() is None


def test_a_command_over_its_timeout_is_answered_timeout_and_cancelled() -> None:
    wire = Wire(daemon=DaemonSession(command_timeouts={"ReadFile": 2.0}))
    wire.connect()
    wire.platform.call("ReadFile", read_file("slow"), wire.clock.now)
    wire.pump()
    [run] = wire.commands_to_run()
    wire.tick(1.0)  # queued for a worker: the timeout has not started
    wire.daemon.command_started(run.command_id, wire.clock.now)
    wire.tick(1.9)
    assert wire.finished() == []
    wire.tick(0.1)
    assert CancelCommand(run.command_id) in wire.from_daemon
    wire.daemon.command_done(run.command_id, ok_result({"content": "late"}))  # ignored
    wire.settle()
    [finished] = wire.finished()
    assert finished.outcome.error is not None
    assert finished.outcome.error.code == ErrorCode.TIMEOUT
    assert finished.outcome.error.message == "ReadFile took longer than 2s"


def test_the_platform_gives_up_on_a_command_after_its_timeout() -> None:
    wire = Wire(platform=PlatformSession(command_timeout_s=5.0))
    wire.connect()
    command_id = wire.platform.call("ReadFile", read_file("slow"), wire.clock.now)
    assert wire.platform.next_deadline() == wire.clock.now + 5.0
    wire.pump()
    wire.tick(5.0)
    [finished] = wire.finished()
    assert finished.outcome.error is not None
    assert finished.outcome.error.message == "no result for ReadFile within 5s"
    wire.run_commands()  # a late result is acked and dropped
    wire.settle()
    assert len(wire.finished()) == 1 and len(wire.daemon.outbox) == 0
    assert command_id not in wire.platform.pending


def test_commands_time_out_in_deadline_order_and_answered_ones_never() -> None:
    """The platform's deadlines with many commands in flight: each command's own, in order;
    one answered or forgotten no longer counts."""
    platform = PlatformSession(command_timeout_s=10.0)
    platform.connect(FrameSigner(KEY, "c"), 0.0)
    slow = platform.call("ReadFile", read_file("slow"), 0.0, timeout_s=30.0)
    forgotten = platform.call("ReadFile", read_file("a"), 1.0)
    quick = [platform.call("ReadFile", read_file(f"q{i}"), 2.0 + i) for i in range(3)]
    platform.forget(forgotten)
    assert platform.next_deadline() == 12.0
    platform.tick(12.5)
    assert [e.command_id for e in platform.events()] == [quick[0]]
    assert platform.next_deadline() == 13.0
    platform.tick(29.0)
    assert [e.command_id for e in platform.events()] == quick[1:]
    assert platform.next_deadline() == 30.0
    platform.tick(30.0)
    assert [e.command_id for e in platform.events()] == [slow]
    assert platform.next_deadline() is None and not platform.pending


def test_a_result_too_big_for_a_frame_becomes_limit_reached() -> None:
    wire = Wire()
    wire.connect()
    wire.platform.call("ReadFile", read_file("big"), wire.clock.now)
    wire.pump()
    wire.run_commands(lambda run: ok_result({"content": "z" * MAX_FRAME_BYTES}))
    wire.settle()
    [finished] = wire.finished()
    assert finished.outcome.error is not None
    assert finished.outcome.error.code == ErrorCode.LIMIT_REACHED


def test_an_event_too_big_for_a_frame_is_dropped() -> None:
    wire = Wire()
    wire.connect()
    big = FilesChanged(changes=[FileChange(path="x" * MAX_FRAME_BYTES, change="added")])
    queue(wire, "big", big)
    wire.settle()
    assert received(wire) == [] and len(wire.daemon.outbox) == 0


@pytest.mark.parametrize("kind", ["result", "command"])
def test_a_peer_sending_the_wrong_kind_of_frame_gets_malformed_frame(kind: str) -> None:
    wire = Wire()
    wire.connect()
    peer = FrameSigner(KEY, "daemon1.platform1")
    receiver = wire.daemon if kind == "result" else wire.platform
    # A platform never sends results; a daemon never sends commands.
    ref = "r1" if kind == "result" else "c1"
    payload = ok_result({}) if kind == "result" else read_file("x")
    receiver.receive(peer.seal_text(kind, "ReadFile", ref, payload), wire.clock.now)  # type: ignore[arg-type]
    watcher = FrameSigner(KEY, "daemon1.platform1")
    [error] = [watcher.open(text) for text in receiver.data_to_send() if '"error"' in text]
    body = FrameError.model_validate(error.payload)
    assert body.error.code == ErrorCode.MALFORMED_FRAME and body.ref == ref
    assert not any(isinstance(e, RunCommand) for e in wire.daemon.events())
    assert receiver.events() == []
