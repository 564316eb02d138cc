"""The link's one I/O layer, used by both ends: moves a session's frames over a websocket.

It holds the receive loop (every message into the session), a writer that sends the session's
frames in seal order, and a timer that calls the session's tick() at its next deadline. All link
logic is in the session; this only moves frames and hands the session's events to its owner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

from opik_connect.link.session import LinkEvent, LinkSession

EventHandler = Callable[[LinkEvent], None]


class SessionDriver:
    """Drives one session over whichever websocket is current (none while disconnected)."""

    def __init__(
        self,
        session: LinkSession,
        on_event: EventHandler,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session = session
        self._on_event = on_event
        self.clock = clock
        self.ws: Connection | None = None
        self._writer: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False

    def attach(self, ws: Connection) -> None:
        self.ws = ws
        self._closed = False

    def detach(self) -> None:
        self.ws = None
        self.session.disconnect()
        self.changed()

    async def serve(self, ws: Connection) -> None:
        """The receive loop: returns when the connection ends or another one replaced it."""
        async for message in ws:
            if self.ws is not ws:
                return
            self.session.receive(message, self.clock())
            self.changed()

    def changed(self) -> None:
        """Call after every call into the session: hands its events over, wakes the writer
        and re-arms the timer."""
        while events := self.session.events():
            for event in events:
                self._on_event(event)
        if self._closed:
            return
        if self.session.has_data_to_send and (self._writer is None or self._writer.done()):
            self._writer = asyncio.create_task(self._write())
        self._arm()

    def close(self) -> None:
        """Stop the writer and the timer for good (until the next attach)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None
        if self._writer is not None:
            self._writer.cancel()

    async def _write(self) -> None:
        """Sends until the session has nothing left; frames of a connection that ended are
        dropped (the session re-sends what matters after the next connect)."""
        while texts := self.session.data_to_send():
            ws = self.ws
            if ws is None:
                continue
            for text in texts:
                try:
                    await ws.send(text)
                except ConnectionClosed:
                    break

    def _arm(self) -> None:
        deadline = self.session.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, deadline
        if deadline is not None:
            delay = max(0.0, deadline - self.clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = self._timer_at = None
        self.session.tick(self.clock())
        self.changed()
