"""The link's one I/O layer, used by both ends: moves a session's frames over a websocket.

It holds the receive loop (every message into the session), a writer that sends the session's
frames in seal order, and a timer that calls the session's tick() at its next deadline. All link
logic is in the session; this only moves frames and hands the session's events to its owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
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
        self._wake = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False
        self._sock: socket.socket | None = None
        self._in_turn = False
        self._corked = False

    def attach(self, ws: Connection) -> None:
        """Frames go to `ws` from now on, written by one task in the order they were sealed."""
        self.ws = ws
        self._closed = False
        self._sock = _corkable(ws)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())

    def detach(self) -> None:
        self.ws = None
        self.session.disconnect()
        self._stop_writer()
        self.changed()

    async def serve(self, ws: Connection) -> None:
        """The receive loop: returns when the connection ends or another one replaced it."""
        async for message in ws:
            if self.ws is not ws:
                return
            self.session.receive(message, self.clock())
            await self.send_now()

    def changed(self) -> None:
        """Call after every call into the session: hands its events over, wakes the writer
        and re-arms the timer."""
        if self._settle() and self.session.has_data_to_send:
            self._wake.set()

    async def send_now(self) -> None:
        """changed(), for callers that can wait: the frames go out from this task, saving the
        writer's wake-up on the hot path."""
        if self._settle() and self.session.has_data_to_send:
            await self._flush()

    def _settle(self) -> bool:
        """Hand the session's events over and re-arm the timer; False once closed."""
        while events := self.session.events():
            for event in events:
                self._on_event(event)
        if self._closed:
            return False
        self._arm()
        return True

    def close(self) -> None:
        """Stop the writer and the timer for good (until the next attach)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None
        self._stop_writer()

    def _stop_writer(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None

    async def _write(self) -> None:
        """Sends what changed() queued while the connection lasts."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        """Send in seal order: whoever holds the lock drains the session and sends. Frames of
        a connection that ended are dropped (the session re-sends what matters)."""
        async with self._send_lock:
            while texts := self.session.data_to_send():
                ws = self.ws
                if ws is None:
                    continue
                self._coalesce(len(texts))
                for text in texts:
                    with contextlib.suppress(ConnectionClosed):
                        await ws.send(text)

    def _coalesce(self, count: int) -> None:
        """The first flush in a turn of the event loop goes out at once; frames flushed after
        it in the same turn (a burst of commands, or the answers to the commands that arrived
        together) are corked until the turn ends, so they cross in a few segments instead of
        costing each side a send and a wake-up per frame."""
        if self._sock is None:
            return
        if not self._in_turn:
            self._in_turn = True
            asyncio.get_running_loop().call_soon(self._end_turn)
            if count == 1:
                return
        if not self._corked:
            self._corked = _set_cork(self._sock, True)

    def _end_turn(self) -> None:
        self._in_turn = False
        if self._corked and self._sock is not None:
            _set_cork(self._sock, False)
        self._corked = False

    def _arm(self) -> None:
        """A timer at the session's next deadline. One armed earlier is kept: when it fires
        early, tick() finds nothing due and the timer is armed again."""
        deadline = self.session.next_deadline()
        if deadline is None or (self._timer_at is not None and self._timer_at <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        delay = max(0.0, deadline - self.clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = self._timer_at = None
        self.session.tick(self.clock())
        self.changed()


def _corkable(ws: Connection) -> socket.socket | None:
    """The connection's TCP socket when the OS can cork it (Linux); None otherwise."""
    if not hasattr(socket, "TCP_CORK"):
        return None
    sock = ws.transport.get_extra_info("socket") if ws.transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    return sock


def _set_cork(sock: socket.socket, on: bool) -> bool:
    """Cork or uncork; False when the socket is gone (the connection's end is handled
    elsewhere)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, int(on))
    except OSError:
        return False
    return on
