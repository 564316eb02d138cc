"""The link's session core, shared by both ends and free of I/O: frames in, frames and events out.

An I/O layer (link/driver.py) drives a session: `receive(message, now)` for every websocket
message, `tick(now)` once `next_deadline()` has passed, and the role's own calls (a command to
send, a result to return). After each call it sends `data_to_send()` in order and handles
`events()`. Time is always passed in, so tests drive a session with a fake clock and no sockets.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass

from opik_connect.link.auth import FrameSigner
from opik_connect.link.frames import decode_frame
from opik_connect.protocol import BridgeError, Frame, FrameError, FrameKind, canonical_json


@dataclass(frozen=True)
class LinkEvent:
    """Something the session's owner must act on (run a command, wake a waiter, close)."""


class LinkSession:
    """What both ends share: signing and replay checks through one FrameSigner per connection,
    error replies to frames that cannot be used, and the queue of frames to send."""

    def __init__(self) -> None:
        self._signer: FrameSigner | None = None
        self._outgoing: list[str] = []
        self._events: list[LinkEvent] = []

    @property
    def connected(self) -> bool:
        return self._signer is not None

    def _attach(self, signer: FrameSigner) -> None:
        """A new authenticated connection: frames sealed for the old one are never sent."""
        self._signer = signer
        self._outgoing.clear()

    def disconnect(self) -> None:
        self._signer = None
        self._outgoing.clear()

    def receive(self, message: str | bytes, now: float) -> None:
        """One websocket message: verified (signature, connection, seq), then handled; a frame
        that cannot be used is answered with a FrameError and the link stays up."""
        if self._signer is None:
            return
        try:
            frame = self._signer.open(message)
        except BridgeError as exc:
            ref = None
            with contextlib.suppress(BridgeError):
                ref = decode_frame(message).id
            self._send_error(exc, ref)
            return
        try:
            self._on_frame(frame, now)
        except BridgeError as exc:
            self._send_error(exc, frame.id)

    def tick(self, now: float) -> None:
        """Act on every deadline up to `now` (heartbeats, timeouts, batched acks)."""

    def next_deadline(self) -> float | None:
        """When tick() next has something to do; None if nothing is scheduled."""
        return None

    @property
    def has_data_to_send(self) -> bool:
        return bool(self._outgoing)

    def data_to_send(self) -> list[str]:
        """Frames to send, in the order they were sealed (their seq order)."""
        out, self._outgoing = self._outgoing, []
        return out

    def events(self) -> list[LinkEvent]:
        if not self._events:
            return []
        out, self._events = self._events, []
        return out

    def _on_frame(self, frame: Frame, now: float) -> None:
        raise NotImplementedError

    def _seal(self, kind: FrameKind, type_name: str, msg_id: str, payload_json: str) -> str | None:
        if self._signer is None:
            return None
        return self._signer.seal_json(kind, type_name, msg_id, payload_json)

    def _send(self, kind: FrameKind, type_name: str, msg_id: str, payload_json: str) -> None:
        text = self._seal(kind, type_name, msg_id, payload_json)
        if text is not None:
            self._outgoing.append(text)

    def _send_error(self, exc: BridgeError, ref: str | None) -> None:
        body = FrameError(error=exc.to_body(), ref=ref).model_dump(mode="json")
        self._send("error", "FrameError", uuid.uuid4().hex, canonical_json(body))
