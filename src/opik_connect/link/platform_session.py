"""The platform's side of a link session with one runner: commands out, results and events in.

Commands outlive connections: one sent while the daemon is away, or lost in a drop, is sent again
when it reconnects, and the first result for its id is the only one delivered. Events are acked
in batches, delivered once per id, and a proposal's decision is taken once whatever its id.
"""

from __future__ import annotations

import heapq
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from opik_connect.link.auth import FrameSigner
from opik_connect.link.caches import BoundedIds
from opik_connect.link.frames import carried_error, failed, parse_model
from opik_connect.link.session import LinkEvent, LinkSession
from opik_connect.protocol import (
    EVENTS,
    Ack,
    BridgeError,
    CommandResult,
    ErrorCode,
    Frame,
    ProposalDecided,
    canonical_json,
)

DEFAULT_TIMEOUTS = {"RunSuite": 3600.0, "ProposeChange": 3600.0}
ACK_DELAY_S = 0.02
"""Acks are batched over this delay: one frame for many results keeps them off the hot path. A
batch lost with the connection only means the daemon re-sends; ids dedupe."""
SEEN_CACHE_SIZE = 8192


@dataclass(frozen=True)
class CommandFinished(LinkEvent):
    """The command's outcome: the daemon's result, its refusal, or a timeout."""

    command_id: str
    outcome: CommandResult


@dataclass(frozen=True)
class EventReceived(LinkEvent):
    """An event seen for the first time (and, for a decision, the proposal's first one)."""

    type_name: str
    event: BaseModel
    held_ack: str = ""
    """The event's id when its Ack waits for settle_decision (defer_decision_acks)."""


@dataclass
class PendingCommand:
    type_name: str
    payload_json: str
    deadline: float
    timeout_s: float


class PlatformSession(LinkSession):
    """One runner's session; it outlives connections, like the runner."""

    def __init__(self, *, command_timeout_s: float, seen_events: BoundedIds | None = None) -> None:
        super().__init__()
        self._timeout_s = command_timeout_s
        self._seen_events = seen_events if seen_events is not None else BoundedIds(SEEN_CACHE_SIZE)
        self._delivered = BoundedIds(SEEN_CACHE_SIZE)
        self.pending: dict[str, PendingCommand] = {}
        self.decisions: dict[str, ProposalDecided] = {}
        self.connected_since: float | None = None
        self.last_heartbeat: float | None = None
        self._acks: list[str] = []
        self._ack_due: float | None = None
        self.defer_decision_acks = False
        """Set when a decision must be kept somewhere durable (replicas: PostgreSQL) before the
        daemon may forget it: its Ack then waits for settle_decision."""
        self._deadlines: list[tuple[float, str]] = []
        """A heap of (deadline, command id); entries of answered commands are dropped lazily,
        so the next deadline costs O(log n) with many commands in flight, not O(n)."""

    def connect(self, signer: FrameSigner, now: float) -> None:
        """Authenticated: every command still waiting for a result is sent (again)."""
        self._attach(signer)
        self.connected_since = self.last_heartbeat = now
        for command_id, pending in self.pending.items():
            self._send("command", pending.type_name, command_id, pending.payload_json)

    def disconnect(self) -> None:
        super().disconnect()
        self.connected_since = None
        self._acks.clear()
        self._ack_due = None

    def call(
        self,
        type_name: str,
        payload: dict[str, Any],
        now: float,
        *,
        timeout_s: float | None = None,
        command_id: str | None = None,
    ) -> str:
        """Send a command (now, or when the daemon connects); its outcome comes as
        CommandFinished, a TIMEOUT one if no result arrives in time."""
        command_id = command_id or secrets.token_hex(16)  # a uuid4's 32 hex digits, 4x cheaper
        timeout = timeout_s or DEFAULT_TIMEOUTS.get(type_name, self._timeout_s)
        pending = PendingCommand(type_name, canonical_json(payload), now + timeout, timeout)
        self.pending[command_id] = pending
        heapq.heappush(self._deadlines, (pending.deadline, command_id))
        if len(self._deadlines) > 2 * len(self.pending) + 64:
            self._deadlines = [(p.deadline, cid) for cid, p in self.pending.items()]
            heapq.heapify(self._deadlines)
        self._send("command", type_name, command_id, pending.payload_json)
        return command_id

    def forget(self, command_id: str) -> None:
        """The caller stopped waiting: a late result is acked and dropped."""
        self.pending.pop(command_id, None)

    def _finish(self, command_id: str, outcome: CommandResult) -> None:
        if self.pending.pop(command_id, None) is not None:
            self._events.append(CommandFinished(command_id, outcome))

    def _on_frame(self, frame: Frame, now: float) -> None:
        if frame.kind == "result":
            outcome = parse_model(CommandResult, frame.payload, ErrorCode.MALFORMED_FRAME)
            if frame.id in self.pending and frame.id not in self._delivered:
                self._delivered.add(frame.id)
                self._finish(frame.id, outcome)
            self._ack(frame.id, now)
        elif frame.kind == "event" and frame.type == "Heartbeat":
            self.last_heartbeat = now
        elif frame.kind == "event":
            self._on_event(frame, now)
        elif frame.kind == "error":
            error = carried_error(frame)
            # A daemon refusing one of our commands (e.g. auth_failed) fails that command.
            self._finish(error.ref or "", CommandResult(ok=False, error=error.error))
        else:
            raise BridgeError(ErrorCode.MALFORMED_FRAME, f"unexpected {frame.kind} frame")

    def _on_event(self, frame: Frame, now: float) -> None:
        model = EVENTS.get(frame.type)
        if model is None:
            raise BridgeError(ErrorCode.UNKNOWN_TYPE, f"unknown event type {frame.type!r}")
        event = parse_model(model, frame.payload, ErrorCode.INVALID_ARGS)
        if frame.id in self._seen_events:
            self._ack(frame.id, now)
            return
        self._seen_events.add(frame.id)
        if isinstance(event, ProposalDecided):
            if event.proposal_id in self.decisions:
                self._ack(frame.id, now)
                return  # the same decision again (its daemon restarted before our Ack)
            self.decisions[event.proposal_id] = event
            if self.defer_decision_acks:
                self._events.append(EventReceived(frame.type, event, held_ack=frame.id))
                return
        self._ack(frame.id, now)
        self._events.append(EventReceived(frame.type, event))

    def settle_decision(
        self, event_id: str, decided: ProposalDecided, kept: bool, now: float
    ) -> None:
        """A held decision was kept (Ack it: the daemon may forget it), or could not be (forget
        we saw it, so the daemon's next copy is taken afresh)."""
        if kept:
            self._ack(event_id, now)
            return
        self._seen_events.discard(event_id)
        if self.decisions.get(decided.proposal_id) is decided:
            del self.decisions[decided.proposal_id]

    def _ack(self, msg_id: str, now: float) -> None:
        self._acks.append(msg_id)
        if self._ack_due is None:
            self._ack_due = now + ACK_DELAY_S

    def tick(self, now: float) -> None:
        if self._ack_due is not None and now >= self._ack_due:
            ids, self._acks, self._ack_due = self._acks, [], None
            self._send("ack", "Ack", uuid.uuid4().hex, canonical_json(Ack(ids=ids).model_dump()))
        while (first := self._first_deadline()) is not None and now >= first:
            _, command_id = heapq.heappop(self._deadlines)
            pending = self.pending[command_id]
            message = f"no result for {pending.type_name} within {pending.timeout_s:g}s"
            self._finish(command_id, failed(ErrorCode.TIMEOUT, message))

    def _first_deadline(self) -> float | None:
        """The earliest deadline of a command still pending (heap entries of others dropped)."""
        heap = self._deadlines
        while heap:
            deadline, command_id = heap[0]
            pending = self.pending.get(command_id)
            if pending is not None and pending.deadline == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def next_deadline(self) -> float | None:
        when = self._ack_due
        first = self._first_deadline()
        if first is not None:
            when = first if when is None else min(when, first)
        return when
