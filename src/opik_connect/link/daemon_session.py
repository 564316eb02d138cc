"""The daemon's side of a link session: commands in, results and events out, exactly once.

Results and events stay in the outbox until the platform acks them and are re-sent after a
reconnect. Command ids are idempotent: a command re-sent after a drop attaches to the running
command or is answered from the outbox or the cache of acked results, never run twice.

Memory is bounded in bytes. Once the outbox holds `outbox_max_bytes` unacknowledged, new commands
wait (back-pressure: they run as acks make room; past the queue bound they are not even held,
and the platform sends them again after a reconnect), new events are refused with OutboxFull (a
decision stays in the proposals journal, which sends it again), and if the platform acks nothing
for `ack_stall_s` while the outbox is full, the link is closed with CLOSE_OUTBOX_FULL and a
reason, so the next connection re-sends the outbox. The caches of acked results and ids forget
their oldest entries beyond their byte budgets.

Only commands with side effects (ProposeChange, RunSuite, any type not known to be a read) keep
their acked results: a read sent again under the same id (after a reconnect, or by a replica
after a failover) runs again, which changes nothing and answers from the current tree. So
thousands of reads cost no memory once acked, and cannot push a ProposeChange result out.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from opik_connect.link.auth import FrameSigner
from opik_connect.link.caches import ByteBoundedMap
from opik_connect.link.frames import failed, parse_model
from opik_connect.link.outbox import Outbox, OutboxEntry, utf8_size
from opik_connect.link.session import LinkEvent, LinkSession
from opik_connect.protocol import (
    MAX_FRAME_BYTES,
    Ack,
    BridgeError,
    ErrorCode,
    Frame,
    Heartbeat,
    canonical_json,
)

log = logging.getLogger(__name__)

DEFAULT_COMMAND_TIMEOUTS = {"RunSuite": 3600.0, "ProposeChange": 3600.0}
DEFAULT_OUTBOX_MAX_BYTES = 64 << 20
DEFAULT_DONE_MAX_BYTES = 4 << 20
RERUNNABLE_COMMANDS = frozenset({"ReadFile", "ListFiles", "SearchFiles"})
"""Reads: running one again is harmless, so their results are not kept once acked."""
DEFAULT_ACKED_IDS_MAX_BYTES = 1 << 20
DEFAULT_ACK_STALL_S = 60.0
CLOSE_OUTBOX_FULL = 4429
"""Close code when the platform leaves too much unacknowledged; the daemon reconnects later."""


class EventNotAcked(Exception):
    """send_event(wait_ack=True) gave up: no Ack in time, or the link stopped. The event may
    still be delivered later (it stays queued until stop); send it again under the same id."""


class OutboxFull(EventNotAcked):
    """The outbox holds its byte budget of unacknowledged frames: the event was not queued."""


@dataclass(frozen=True)
class RunCommand(LinkEvent):
    """Run this command's handler, then report with command_started / command_done."""

    command_id: str
    type_name: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class CancelCommand(LinkEvent):
    """This command timed out and was answered; stop its handler."""

    command_id: str


@dataclass(frozen=True)
class EventAcked(LinkEvent):
    """The platform acked this event (results are acked too, but nobody waits on those)."""

    event_id: str


@dataclass(frozen=True)
class PeerError(LinkEvent):
    """The platform could not use one of our frames."""

    payload: dict[str, Any]


@dataclass(frozen=True)
class CloseLink(LinkEvent):
    """Close the connection with this code and reason (the daemon reconnects after backoff)."""

    code: int
    reason: str


def error_result(code: ErrorCode, message: str) -> str:
    """A failed CommandResult as canonical JSON."""
    return canonical_json(failed(code, message).model_dump(mode="json"))


class DaemonSession(LinkSession):
    """Outlives connections: the outbox, the caches and running commands carry over."""

    def __init__(
        self,
        *,
        max_queued: int = 1024,
        command_timeout_s: float = 60.0,
        command_timeouts: dict[str, float] | None = None,
        outbox_max_bytes: int = DEFAULT_OUTBOX_MAX_BYTES,
        done_max_bytes: int = DEFAULT_DONE_MAX_BYTES,
        acked_ids_max_bytes: int = DEFAULT_ACKED_IDS_MAX_BYTES,
        ack_stall_s: float = DEFAULT_ACK_STALL_S,
    ) -> None:
        super().__init__()
        self._max_queued = max_queued
        self._timeout_s = command_timeout_s
        self._timeouts = {**DEFAULT_COMMAND_TIMEOUTS, **(command_timeouts or {})}
        self.outbox = Outbox(outbox_max_bytes)
        self.done: ByteBoundedMap[OutboxEntry] = ByteBoundedMap(done_max_bytes)
        """Acked results of commands with side effects, kept so one re-sent later is answered,
        not run again."""
        self.acked_events: ByteBoundedMap[None] = ByteBoundedMap(acked_ids_max_bytes)
        self.running: dict[str, str] = {}
        """Command id -> type of every command admitted and not yet answered."""
        self.held: OrderedDict[str, RunCommand] = OrderedDict()
        """Admitted commands waiting for the outbox to have room before they run."""
        self._deadlines: dict[str, float] = {}
        self._heartbeat_interval_s = 10.0
        self._next_heartbeat: float | None = None
        self._ack_stall_s = ack_stall_s
        self._last_ack_at = 0.0
        self._closing = False

    def connect(self, signer: FrameSigner, heartbeat_interval_s: float, now: float) -> None:
        """Authenticated: beat at once, then re-send everything not yet acked, in order."""
        self._attach(signer)
        self._closing = False
        self._last_ack_at = now
        self._heartbeat_interval_s = heartbeat_interval_s
        self._beat(now)
        for msg_id, entry in self.outbox.items():
            self._send_entry(msg_id, entry)

    def disconnect(self) -> None:
        super().disconnect()
        self._next_heartbeat = None

    def queue_event(self, event_id: str, type_name: str, payload_json: str) -> bool:
        """Buffer an event until acked; False if this id was acked before (nothing to do).
        Raises OutboxFull when the outbox is at its budget: the caller keeps the event."""
        if event_id in self.acked_events:
            return False
        if event_id in self.outbox:
            return True  # already queued: re-sent by itself after a reconnect
        if self.outbox.full:
            raise OutboxFull(f"outbox full: {self.outbox.bytes} bytes unacknowledged")
        entry = OutboxEntry("event", type_name, payload_json)
        self.outbox.put(event_id, entry)
        self._send_entry(event_id, entry)
        return True

    def command_started(self, command_id: str, now: float) -> None:
        """Its handler got a worker: the command's timeout counts from here."""
        type_name = self.running.get(command_id)
        if type_name is not None:
            self._deadlines[command_id] = now + self._timeouts.get(type_name, self._timeout_s)

    def command_done(self, command_id: str, result: dict[str, Any]) -> None:
        """The handler's CommandResult payload; ignored if the command already timed out."""
        type_name = self.running.pop(command_id, None)
        self._deadlines.pop(command_id, None)
        if type_name is not None:
            self._answer(command_id, type_name, canonical_json(result))

    def _on_command(self, frame: Frame) -> None:
        if frame.id in self.running:
            return  # re-sent after a reconnect: the running command will answer
        cached = self.outbox.get(frame.id) or self.done.get(frame.id)
        if cached is not None:  # finished before: answer from the cache, never run twice
            self._send_entry(frame.id, cached)
            return
        if len(self.running) >= self._max_queued:
            if self.outbox.full:  # no room to answer: the platform re-sends it on reconnect
                return
            message = f"{len(self.running)} commands already queued; retry later"
            self._answer(frame.id, frame.type, error_result(ErrorCode.LIMIT_REACHED, message))
            return
        self.running[frame.id] = frame.type
        run = RunCommand(frame.id, frame.type, frame.payload)
        if self.outbox.full:
            self.held[frame.id] = run
        else:
            self._events.append(run)

    def _release_held(self) -> None:
        while self.held and not self.outbox.full:
            _, run = self.held.popitem(last=False)
            self._events.append(run)

    def _answer(self, command_id: str, type_name: str, payload_json: str) -> None:
        entry = OutboxEntry("result", type_name, payload_json)
        self.outbox.put(command_id, entry)
        self._send_entry(command_id, entry)

    def _on_frame(self, frame: Frame, now: float) -> None:
        if frame.kind == "command":
            self._on_command(frame)
        elif frame.kind == "ack":
            self._on_ack(parse_model(Ack, frame.payload, ErrorCode.MALFORMED_FRAME))
            self._last_ack_at = now
        elif frame.kind == "error":
            self._events.append(PeerError(frame.payload))
        else:
            raise BridgeError(ErrorCode.MALFORMED_FRAME, f"unexpected {frame.kind} frame")

    def _on_ack(self, ack: Ack) -> None:
        for msg_id in ack.ids:
            entry = self.outbox.pop(msg_id)
            if entry is not None and entry.kind == "result":
                if entry.type_name not in RERUNNABLE_COMMANDS:
                    self.done.put(msg_id, entry, entry.size)
                continue  # nobody waits on a result's Ack: no event for it
            if entry is not None:
                self.acked_events.put(msg_id, None, 0)
            self._events.append(EventAcked(msg_id))
        self._release_held()

    def _send_entry(self, msg_id: str, entry: OutboxEntry) -> None:
        """A frame the platform would close the link over is never sent: a result becomes
        limit_reached, an event is dropped (its sender must split it)."""
        text = self._seal(entry.kind, entry.type_name, msg_id, entry.payload_json)
        if text is None:
            return
        if utf8_size(text) > MAX_FRAME_BYTES:
            if entry.kind != "result":
                kind, type_name = entry.kind, entry.type_name
                log.error("dropping %s %s: over %d bytes", kind, type_name, MAX_FRAME_BYTES)
                self.outbox.pop(msg_id)
                return
            message = (
                f"{entry.type_name} result exceeds {MAX_FRAME_BYTES} bytes; narrow the request"
            )
            entry = OutboxEntry(
                "result", entry.type_name, error_result(ErrorCode.LIMIT_REACHED, message)
            )
            self.outbox.put(msg_id, entry)
            text = self._seal(entry.kind, entry.type_name, msg_id, entry.payload_json)
            assert text is not None
        self._outgoing.append(text)

    def _stalled_at(self) -> float | None:
        """When a full outbox with no Ack since closes the link (None: no such deadline)."""
        if not self.connected or self._closing or not self.outbox.full:
            return None
        return self._last_ack_at + self._ack_stall_s

    def _beat(self, now: float) -> None:
        payload = canonical_json(Heartbeat(sent_at=now).model_dump(mode="json"))
        self._send("event", "Heartbeat", uuid.uuid4().hex, payload)
        self._next_heartbeat = now + self._heartbeat_interval_s

    def tick(self, now: float) -> None:
        if self._next_heartbeat is not None and now >= self._next_heartbeat:
            self._beat(now)
        stalled_at = self._stalled_at()
        if stalled_at is not None and now >= stalled_at:
            self._closing = True
            reason = (
                f"outbox full: {self.outbox.bytes} bytes unacknowledged, "
                f"no Ack for {self._ack_stall_s:g}s"
            )
            self._events.append(CloseLink(CLOSE_OUTBOX_FULL, reason))
        for command_id, deadline in list(self._deadlines.items()):
            if now >= deadline:
                type_name = self.running.pop(command_id)
                del self._deadlines[command_id]
                timeout = self._timeouts.get(type_name, self._timeout_s)
                message = f"{type_name} took longer than {timeout:g}s"
                self._answer(command_id, type_name, error_result(ErrorCode.TIMEOUT, message))
                self._events.append(CancelCommand(command_id))

    def next_deadline(self) -> float | None:
        when = self._next_heartbeat
        if self._deadlines:
            first = min(self._deadlines.values())
            when = first if when is None else min(when, first)
        if self.outbox.full:
            stalled_at = self._stalled_at()
            if stalled_at is not None:
                when = stalled_at if when is None else min(when, stalled_at)
        return when
