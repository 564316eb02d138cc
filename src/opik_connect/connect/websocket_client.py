"""The daemon's end of the link: dial out, pair, authenticate, then move frames.

The daemon always dials (it works behind NAT). What happens on the link (the outbox and its
acks, idempotent command ids, heartbeats, timeouts) is decided by link.daemon_session; this
module keeps the connection up, pairs, says Hello, and runs the command handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, TypedDict

from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from opik_connect.connect.command_handlers import Handler, run_handler, run_handler_now
from opik_connect.connect.link_handshake import (
    HandshakeRefused,
    RunnerIdentity,
    hello,
    pair,
)
from opik_connect.connect.platform_url import LinkError, check_url_policy, link_compression
from opik_connect.connect.proposals.command_id import serving
from opik_connect.link.auth import HANDSHAKE_TIMEOUT_S, PairingRecord, PairingStore
from opik_connect.link.daemon_session import (
    DEFAULT_ACK_STALL_S,
    DEFAULT_OUTBOX_MAX_BYTES,
    CancelCommand,
    CloseLink,
    DaemonSession,
    EventAcked,
    EventNotAcked,
    OutboxFull,
    PeerError,
    RunCommand,
)
from opik_connect.link.driver import SessionDriver
from opik_connect.link.session import LinkEvent
from opik_connect.link.sink_key import KEY_TTL_S, fresh_grant
from opik_connect.protocol import (
    CLOSE_DRAINING,
    EVENTS,
    MAX_FRAME_BYTES,
    BridgeError,
    ErrorCode,
    RootSummary,
    TraceSinkGrant,
    canonical_json,
)

log = logging.getLogger(__name__)

__all__ = [
    "DaemonLink",
    "EventNotAcked",
    "Handler",
    "LinkState",
    "OutboxFull",
    "RunnerIdentity",
]

StateCallback = Callable[["LinkState", str], None]
PairCodeCallback = Callable[[str, float], None]


class LinkState(StrEnum):
    CONNECTING = "connecting"
    PAIRING = "pairing"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


class SendOptions(TypedDict, total=False):
    """The keyword options of DaemonLink.send_event, for those who pass them on."""

    event_id: str | None
    wait_ack: bool
    ack_timeout_s: float | None


def backoff_delay(attempt: int, initial: float, cap: float) -> float:
    """Capped exponential backoff, jittered in [delay/2, delay] so peers do not retry in step."""
    delay = min(cap, initial * (2**attempt))
    return delay * (0.5 + random.random() / 2)


def _draining(exc: Exception) -> str:
    """The platform closed with CLOSE_DRAINING: a restart or a deploy, so reconnect as usual
    (a load balancer sends the new connection to a replica that is not draining)."""
    if isinstance(exc, ConnectionClosed) and exc.rcvd and exc.rcvd.code == CLOSE_DRAINING:
        log.info("the platform is draining (close code %d); reconnecting", CLOSE_DRAINING)
        return f"platform draining (close code {CLOSE_DRAINING})"
    return ""


class DaemonLink:
    """One daemon's authenticated link to a platform, kept up until stop()."""

    def __init__(
        self,
        url: str,
        identity: RunnerIdentity,
        *,
        handlers: dict[str, Handler],
        root_summary: Callable[[], Awaitable[RootSummary]],
        pairing: PairingRecord | None = None,
        pairing_store: PairingStore | None = None,
        pairing_key: str | None = None,
        on_state: StateCallback | None = None,
        on_pair_code: PairCodeCallback | None = None,
        insecure: bool = False,
        max_concurrency: int = 32,
        max_queued: int = 1024,
        command_timeout_s: float = 60.0,
        command_timeouts: dict[str, float] | None = None,
        outbox_max_bytes: int = DEFAULT_OUTBOX_MAX_BYTES,
        ack_stall_s: float = DEFAULT_ACK_STALL_S,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        self._ssl = check_url_policy(url, insecure)
        self.url = url
        self.identity = identity
        self.handlers = handlers
        self._root_summary = root_summary
        self._pairing = pairing
        self._store = pairing_store
        self._pairing_key = pairing_key or f"{url} {identity.project}"
        self._on_state = on_state
        self._on_pair_code = on_pair_code
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._backoff = (backoff_initial_s, backoff_max_s)
        self.session = DaemonSession(
            max_queued=max_queued,
            command_timeout_s=command_timeout_s,
            command_timeouts=command_timeouts,
            outbox_max_bytes=outbox_max_bytes,
            ack_stall_s=ack_stall_s,
        )
        self._driver = SessionDriver(self.session, self._on_event)
        self.state = LinkState.STOPPED
        self.connected = asyncio.Event()
        self._stopping = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._running: dict[str, asyncio.Task[None]] = {}
        self._ack_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._handshaking: ClientConnection | None = None
        """The socket still pairing or saying Hello: stop() closes it, or pairing waits minutes."""
        self._close_reason = ""
        self.connections = 0
        """How many times the link completed a handshake (for status and tests)."""
        self._trace_sink: TraceSinkGrant | None = None
        self._link_key = b""
        self._platform_clock_offset = 0.0

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff; returns when stop() is called."""
        attempt = 0
        self._stopping.clear()
        self._set_state(LinkState.CONNECTING, self.url)
        while not self._stopping.is_set():
            sessions = self.connections
            why = ""
            try:
                async with connect(
                    self.url,
                    ssl=self._ssl,
                    max_size=MAX_FRAME_BYTES,
                    open_timeout=HANDSHAKE_TIMEOUT_S,
                    compression=link_compression(self.url),
                ) as ws:
                    await self._connection(ws)
            except HandshakeRefused as exc:
                log.warning("platform refused the link: %s", exc)
                self._set_state(LinkState.RECONNECTING, str(exc))
            except InvalidURI as exc:
                raise LinkError(str(exc)) from exc
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError, BridgeError) as exc:
                log.debug("link attempt failed: %r", exc)
                why = f"{_draining(exc) or str(exc) or type(exc).__name__}; "
            finally:
                self._detach()
            if self._close_reason:
                why, self._close_reason = f"{self._close_reason}; ", ""
            if self._stopping.is_set():
                break
            if self.connections > sessions:
                attempt = 0  # it was up: a drop starts the backoff afresh
            delay = backoff_delay(attempt, *self._backoff)
            attempt += 1
            self._set_state(LinkState.RECONNECTING, f"{why}retrying in {delay:.1f}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        self._set_state(LinkState.STOPPED, "")

    async def stop(self) -> None:
        self._stopping.set()
        ws = self._ws or self._handshaking
        if ws is not None:
            await ws.close()
        for task in [*self._running.values(), *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._running.values(), *self._tasks, return_exceptions=True)
        self._driver.close()
        for waiters in self._ack_waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_exception(EventNotAcked("the link stopped before the Ack"))

    async def send_event(
        self,
        type_name: str,
        event: BaseModel,
        *,
        event_id: str | None = None,
        wait_ack: bool = False,
        ack_timeout_s: float | None = None,
    ) -> str:
        """Queue an event; it is re-sent after reconnects until the platform acks it.

        wait_ack=True returns only once the platform acked it (EventNotAcked after ack_timeout_s,
        or when the link stops; OutboxFull at once if the outbox is at its byte budget). A
        caller that must deliver exactly once across restarts gives a stable event_id: the
        platform drops an id it has seen, and an id this link already saw acked returns at once
        without being sent again. Without wait_ack an event the full outbox cannot take is
        dropped with a warning: anything that must arrive (a decision) waits for its Ack.
        """
        model = EVENTS.get(type_name)
        if model is None or not isinstance(event, model) or type_name == "Heartbeat":
            raise ValueError(f"not a bufferable event: {type_name}")
        event_id = event_id or uuid.uuid4().hex
        payload_json = canonical_json(event.model_dump(mode="json"))
        try:
            queued = self.session.queue_event(event_id, type_name, payload_json)
        except OutboxFull as exc:
            self._driver.changed()
            if wait_ack:
                raise
            log.warning("dropping %s %s: %s", type_name, event_id, exc)
            return event_id
        await self._driver.send_now()
        if queued and wait_ack:
            acked = asyncio.get_running_loop().create_future()
            self._ack_waiters.setdefault(event_id, []).append(acked)
            await self._wait_ack(event_id, acked, ack_timeout_s)
        return event_id

    async def _wait_ack(
        self, event_id: str, acked: asyncio.Future[None], timeout_s: float | None
    ) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await acked
        except TimeoutError as exc:
            raise EventNotAcked(f"no Ack for event {event_id} within {timeout_s:g}s") from exc
        finally:
            if acked.done() and not acked.cancelled():
                acked.exception()  # retrieved even if our caller was cancelled meanwhile
            waiters = self._ack_waiters.get(event_id, [])
            if acked in waiters:
                waiters.remove(acked)
            if not waiters:
                self._ack_waiters.pop(event_id, None)

    @property
    def unacked(self) -> int:
        return len(self.session.outbox)

    async def _connection(self, ws: ClientConnection) -> None:
        """Pair if needed, authenticate, then move frames until the connection ends."""
        if self._stopping.is_set():
            return
        self._handshaking = ws
        try:
            await self._handshake(ws)
        finally:
            self._handshaking = None
        self.connections += 1
        self.connected.set()
        self._set_state(LinkState.CONNECTED, self.url)
        self._driver.attach(ws)
        self._driver.changed()
        await self._driver.serve(ws)

    async def _handshake(self, ws: ClientConnection) -> None:
        from_store = False
        record = self._pairing
        if record is None and self._store is not None:
            record = self._store.get(self._pairing_key)
            from_store = record is not None
        if record is None:
            self._set_state(LinkState.PAIRING, "waiting for the platform")
            record = await pair(ws, self.identity, self._pair_code)
            if self._store is not None:
                self._store.put(self._pairing_key, record)
        try:
            root = await self._root_summary()
            signer, welcome = await hello(ws, record, self.identity, root)
        except HandshakeRefused as exc:
            if exc.code == ErrorCode.AUTH_FAILED and from_store:
                # The platform no longer knows this pairing: pair again on the next attempt.
                assert self._store is not None
                self._store.remove(self._pairing_key)
            raise
        self._ws = ws
        self._trace_sink = welcome.trace_sink
        self._link_key = record.link_key()
        if welcome.trace_sink is not None:
            # The platform stamped now + KEY_TTL_S on its clock: renewals use that clock.
            self._platform_clock_offset = welcome.trace_sink.expires_at - KEY_TTL_S - time.time()
        self.session.connect(signer, welcome.heartbeat_interval_s, self._driver.clock())

    @property
    def verifies_tls(self) -> bool:
        """False only for wss:// with --insecure (ws:// has no certificate to skip)."""
        return self._ssl is None or self._ssl.verify_mode != ssl.CERT_NONE

    def trace_sink(self) -> TraceSinkGrant | None:
        """Where suite traces may go on the platform (the latest Welcome's grant), with a key
        renewed by the daemon itself when a connection outlives the one it came with."""
        if self._trace_sink is None:
            return None
        platform_now = time.time() + self._platform_clock_offset
        grant = fresh_grant(self._trace_sink, self.identity.runner_id, self._link_key, platform_now)
        self._trace_sink = grant
        return grant

    def _detach(self) -> None:
        if self._ws is not None:
            self._driver.detach()
        self._ws = None
        self.connected.clear()

    def _pair_code(self, code: str, expires_at: float) -> None:
        self._set_state(LinkState.PAIRING, code)
        if self._on_pair_code is not None:
            self._on_pair_code(code, expires_at)

    def _on_event(self, event: LinkEvent) -> None:
        """What the session asks of us."""
        if isinstance(event, RunCommand):
            payload = run_handler_now(self.handlers, event.type_name, event.payload)
            if payload is not None:  # answered at once: no task, no worker slot
                self.session.command_done(event.command_id, payload)
            else:
                self._running[event.command_id] = asyncio.create_task(self._execute(event))
        elif isinstance(event, CancelCommand):
            task = self._running.pop(event.command_id, None)
            if task is not None:
                task.cancel()
        elif isinstance(event, EventAcked):
            for future in self._ack_waiters.pop(event.event_id, []):
                if not future.done():
                    future.set_result(None)
        elif isinstance(event, PeerError):
            log.warning("platform reported a frame error: %s", event.payload)
        elif isinstance(event, CloseLink):
            log.warning("closing the link: %s", event.reason)
            self._close_reason = event.reason
            if self._ws is not None:
                self._spawn(self._ws.close(event.code, event.reason))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, command: RunCommand) -> None:
        try:
            async with self._semaphore:
                self.session.command_started(command.command_id, self._driver.clock())
                self._driver.changed()
                with serving(command.command_id):
                    payload = await run_handler(self.handlers, command.type_name, command.payload)
            self.session.command_done(command.command_id, payload)
            await self._driver.send_now()
        finally:
            self._running.pop(command.command_id, None)

    def _set_state(self, state: LinkState, detail: str) -> None:
        self.state = state
        if self._on_state is not None:
            self._on_state(state, detail)
