"""The daemon's end of the link: dial out, pair, authenticate, serve commands, send events.

The daemon always dials (it works behind NAT). Results and events stay buffered until the platform
acknowledges them and are re-sent after a reconnect; command ids are idempotent, so a command
re-sent by the platform after a drop attaches to the running task or gets the cached result.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import ssl
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from opik_connect.connect.proposals.command_id import serving
from opik_connect.link.auth import (
    FrameSigner,
    PairingRecord,
    PairingStore,
    connection_id,
    new_activation_key,
    new_nonce,
    sign_hello,
)
from opik_connect.link.frames import decode_frame, encode, parse_model
from opik_connect.protocol import (
    CLOSE_AUTH_FAILED,
    COMMANDS,
    EVENTS,
    MAX_FRAME_BYTES,
    Ack,
    BridgeError,
    CommandResult,
    ErrorBody,
    ErrorCode,
    Frame,
    FrameError,
    FrameKind,
    Heartbeat,
    Hello,
    Paired,
    PairPending,
    PairRequest,
    RootSummary,
    Welcome,
)

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[BaseModel]]
"""A command handler: receives the validated args model, returns the result model."""
StateCallback = Callable[["LinkState", str], None]
PairCodeCallback = Callable[[str, float], None]

DEFAULT_COMMAND_TIMEOUTS = {"RunSuite": 3600.0}
DONE_CACHE_SIZE = 4096
HANDSHAKE_TIMEOUT_S = 15.0


class LinkState(StrEnum):
    CONNECTING = "connecting"
    PAIRING = "pairing"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


class LinkError(Exception):
    """The link cannot be used as configured (bad URL policy); retrying will not help."""


class EventNotAcked(Exception):
    """send_event(wait_ack=True) gave up: no Ack in time, or the link stopped. The event may
    still be delivered later (it stays queued until stop); send it again under the same id."""


class HandshakeRefused(Exception):
    """The platform refused pairing or the Hello; the message says why."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.AUTH_FAILED) -> None:
        super().__init__(message)
        self.code = code

    @classmethod
    def from_frame(cls, frame: Frame) -> HandshakeRefused:
        error = parse_model(FrameError, frame.payload, ErrorCode.MALFORMED_FRAME).error
        return cls(f"{error.code}: {error.message}", error.code)


@dataclass(frozen=True)
class RunnerIdentity:
    runner_id: str
    name: str
    project: str


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url_policy(url: str, insecure: bool) -> ssl.SSLContext | None:
    """wss:// verifies certificates; ws:// only to loopback unless insecure was asked for."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what rejects 'ws://host:abc'
    except ValueError as exc:
        raise LinkError(f"not a valid platform URL {url!r}: {exc}") from None
    if parts.scheme in ("ws", "wss") and not parts.hostname:
        raise LinkError(f"platform URL {url!r} names no host")
    if parts.scheme == "wss":
        if insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context()
    if parts.scheme == "ws":
        if not is_loopback_host(parts.hostname or "") and not insecure:
            raise LinkError(f"refusing ws:// to non-loopback host {parts.hostname!r}; use wss://")
        return None
    raise LinkError(f"platform URL must be ws:// or wss://, got {url!r}")


def link_compression(url: str) -> str | None:
    """permessage-deflate only when the platform is off this machine: on loopback bandwidth is
    free, and deflating both ways costs more time (~70 us per 4 KiB round trip) than it saves."""
    return None if is_loopback_host(urlsplit(url).hostname or "") else "deflate"


def backoff_delay(attempt: int, initial: float, cap: float) -> float:
    """Capped exponential backoff, jittered in [delay/2, delay] so peers do not retry in step."""
    delay = min(cap, initial * (2**attempt))
    return delay * (0.5 + random.random() / 2)


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
        self._max_queued = max_queued
        self._timeout_s = command_timeout_s
        self._timeouts = {**DEFAULT_COMMAND_TIMEOUTS, **(command_timeouts or {})}
        self._backoff = (backoff_initial_s, backoff_max_s)
        self.state = LinkState.STOPPED
        self.connected = asyncio.Event()
        self._stopping = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._signer: FrameSigner | None = None
        self._send_lock = asyncio.Lock()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._outbox: OrderedDict[str, tuple[FrameKind, str, dict[str, Any]]] = OrderedDict()
        self._done: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()
        self._acked_events: OrderedDict[str, None] = OrderedDict()
        self._ack_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._welcome_interval = 10.0
        self.connections = 0
        """How many times the link completed a handshake (for status and tests)."""

    # --- public API -----------------------------------------------------------------------------

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
                    await self._session(ws)
            except HandshakeRefused as exc:
                log.warning("platform refused the link: %s", exc)
                self._set_state(LinkState.RECONNECTING, str(exc))
            except InvalidURI as exc:
                raise LinkError(str(exc)) from exc
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError, BridgeError) as exc:
                log.debug("link attempt failed: %r", exc)
                why = f"{str(exc) or type(exc).__name__}; "
            finally:
                self._detach()
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
        ws = self._ws
        if ws is not None:
            await ws.close()
        for task in [*self._running.values(), *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._running.values(), *self._tasks, return_exceptions=True)
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
        or when the link stops). A caller that must deliver exactly once across restarts gives a
        stable event_id: the platform drops an id it has seen, and an id this link already saw
        acked returns at once without being sent again.
        """
        model = EVENTS.get(type_name)
        if model is None or not isinstance(event, model) or type_name == "Heartbeat":
            raise ValueError(f"not a bufferable event: {type_name}")
        event_id = event_id or uuid.uuid4().hex
        if event_id in self._acked_events:
            return event_id
        acked: asyncio.Future[None] | None = None
        if wait_ack:
            acked = asyncio.get_running_loop().create_future()
            self._ack_waiters.setdefault(event_id, []).append(acked)
        if event_id not in self._outbox:  # already queued: the link (re)sends it by itself
            payload = event.model_dump(mode="json")
            self._outbox[event_id] = ("event", type_name, payload)
            await self._send("event", type_name, event_id, payload)
        if acked is not None:
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
        return len(self._outbox)

    # --- connection -----------------------------------------------------------------------------

    async def _session(self, ws: ClientConnection) -> None:
        """Pair if needed, authenticate, then serve until the connection ends."""
        from_store = False
        record = self._pairing
        if record is None and self._store is not None:
            record = self._store.get(self._pairing_key)
            from_store = record is not None
        if record is None:
            record = await self._pair(ws)
        try:
            signer = await self._hello(ws, record)
        except HandshakeRefused as exc:
            if exc.code == ErrorCode.AUTH_FAILED and from_store:
                # The platform no longer knows this pairing: pair again on the next attempt.
                assert self._store is not None
                self._store.remove(self._pairing_key)
            raise
        self._ws, self._signer = ws, signer
        self.connections += 1
        self.connected.set()
        self._set_state(LinkState.CONNECTED, self.url)
        heartbeat = asyncio.create_task(self._heartbeats(ws, self._welcome_interval))
        try:
            for msg_id, (kind, type_name, payload) in list(self._outbox.items()):
                await self._send(kind, type_name, msg_id, payload)
            await self._receive(ws, signer)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    def _detach(self) -> None:
        self._ws = None
        self._signer = None
        self.connected.clear()

    async def _pair(self, ws: ClientConnection) -> PairingRecord:
        self._set_state(LinkState.PAIRING, "waiting for the platform")
        activation_key = new_activation_key()
        request = PairRequest(
            runner_id=self.identity.runner_id,
            runner_name=self.identity.name,
            project=self.identity.project,
            activation_key=activation_key,
        )
        frame = Frame(
            kind="control",
            type="PairRequest",
            id=uuid.uuid4().hex,
            payload=request.model_dump(mode="json"),
        )
        await ws.send(encode(frame))
        while True:
            reply = decode_frame(await ws.recv())
            if reply.type == "PairPending":
                pending = parse_model(PairPending, reply.payload, ErrorCode.MALFORMED_FRAME)
                self._set_state(LinkState.PAIRING, pending.code)
                if self._on_pair_code is not None:
                    self._on_pair_code(pending.code, pending.expires_at)
            elif reply.type == "Paired":
                paired = parse_model(Paired, reply.payload, ErrorCode.MALFORMED_FRAME)
                record = PairingRecord(
                    runner_id=self.identity.runner_id,
                    activation_key=activation_key,
                    session_id=paired.session_id,
                    runner_name=self.identity.name,
                    project=self.identity.project,
                )
                if self._store is not None:
                    self._store.put(self._pairing_key, record)
                return record
            elif reply.kind == "error":
                raise HandshakeRefused.from_frame(reply)

    async def _hello(self, ws: ClientConnection, record: PairingRecord) -> FrameSigner:
        key = record.link_key()
        nonce = new_nonce()
        hello = Hello(
            runner_id=record.runner_id,
            runner_name=self.identity.name,
            project=self.identity.project,
            root=await self._root_summary(),
            nonce=nonce,
        )
        await ws.send(
            encode(sign_hello(key, nonce, uuid.uuid4().hex, hello.model_dump(mode="json")))
        )
        async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
            reply = decode_frame(await ws.recv())
        if reply.kind == "error":
            raise HandshakeRefused.from_frame(reply)
        welcome = parse_model(Welcome, reply.payload, ErrorCode.MALFORMED_FRAME)
        signer = FrameSigner(key, connection_id(nonce, welcome.nonce))
        try:
            signer.verify(reply)
        except BridgeError as exc:
            await ws.close(CLOSE_AUTH_FAILED, "platform failed authentication")
            raise HandshakeRefused(f"platform's Welcome: {exc.message}") from exc
        self._welcome_interval = welcome.heartbeat_interval_s
        return signer

    async def _heartbeats(self, ws: ClientConnection, interval: float) -> None:
        """Its own task, so slow commands never delay it."""
        while True:
            beat = Heartbeat(sent_at=time.time())
            await self._send("event", "Heartbeat", uuid.uuid4().hex, beat.model_dump(mode="json"))
            await asyncio.sleep(interval)

    async def _send(self, kind: FrameKind, type_name: str, msg_id: str, payload: dict) -> None:
        """Seal and send under one lock so seq order on the wire is the order of sealing."""
        async with self._send_lock:
            ws, signer = self._ws, self._signer
            if ws is None or signer is None:
                return
            text = signer.seal_text(kind, type_name, msg_id, payload)
            if len(text.encode()) > MAX_FRAME_BYTES:
                text = self._oversize(signer, kind, type_name, msg_id)
                if not text:
                    return
            with contextlib.suppress(ConnectionClosed):
                await ws.send(text)

    def _oversize(self, signer: FrameSigner, kind: FrameKind, type_name: str, msg_id: str) -> str:
        """A frame the platform would close the link over: a result becomes limit_reached,
        an event is dropped (its sender must split it)."""
        if kind != "result":
            log.error("dropping %s %s: over %d bytes", kind, type_name, MAX_FRAME_BYTES)
            self._outbox.pop(msg_id, None)
            return ""
        body = ErrorBody(
            code=ErrorCode.LIMIT_REACHED,
            message=f"{type_name} result exceeds {MAX_FRAME_BYTES} bytes; narrow the request",
        )
        payload = CommandResult(ok=False, error=body).model_dump(mode="json")
        self._outbox[msg_id] = (kind, type_name, payload)
        return signer.seal_text(kind, type_name, msg_id, payload)

    async def _send_error(self, exc: BridgeError, ref: str | None) -> None:
        body = FrameError(error=exc.to_body(), ref=ref)
        await self._send("error", "FrameError", uuid.uuid4().hex, body.model_dump(mode="json"))

    async def _receive(self, ws: ClientConnection, signer: FrameSigner) -> None:
        async for message in ws:
            try:
                frame = signer.open(message)
            except BridgeError as exc:
                ref = None
                with contextlib.suppress(BridgeError):
                    ref = decode_frame(message).id
                await self._send_error(exc, ref)
                continue
            if frame.kind == "command":
                self._on_command(frame)
            elif frame.kind == "ack":
                self._on_ack(frame)
            elif frame.kind == "error":
                log.warning("platform reported a frame error: %s", frame.payload)
            else:
                await self._send_error(
                    BridgeError(ErrorCode.MALFORMED_FRAME, f"unexpected {frame.kind} frame"),
                    frame.id,
                )

    # --- commands -------------------------------------------------------------------------------

    def _on_command(self, frame: Frame) -> None:
        if frame.id in self._running:
            return  # re-sent after a reconnect: the running task will answer
        entry = self._outbox.get(frame.id)
        if entry is None and frame.id in self._done:
            entry = ("result", *self._done[frame.id])
        if entry is not None:  # finished before: answer from the cache, never run twice
            self._spawn(self._send(entry[0], entry[1], frame.id, entry[2]))
            return
        if len(self._running) >= self._max_queued:
            body = ErrorBody(
                code=ErrorCode.LIMIT_REACHED,
                message=f"{len(self._running)} commands already queued; retry later",
            )
            payload = CommandResult(ok=False, error=body).model_dump(mode="json")
            self._outbox[frame.id] = ("result", frame.type, payload)
            self._spawn(self._send("result", frame.type, frame.id, payload))
            return
        self._running[frame.id] = asyncio.create_task(self._execute(frame))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, frame: Frame) -> None:
        try:
            async with self._semaphore:
                with serving(frame.id):
                    payload = await self._run_handler(frame.type, frame.payload)
            self._outbox[frame.id] = ("result", frame.type, payload)
        finally:
            self._running.pop(frame.id, None)
        await self._send("result", frame.type, frame.id, payload)

    async def _run_handler(self, type_name: str, args_payload: dict[str, Any]) -> dict[str, Any]:
        """The CommandResult payload: a success is spelled directly from the handler's result,
        already checked for its type, so it is dumped once and not validated twice."""
        try:
            spec = COMMANDS.get(type_name)
            handler = self.handlers.get(type_name)
            if spec is None or handler is None:
                raise BridgeError(ErrorCode.UNKNOWN_TYPE, f"unknown command type {type_name!r}")
            args = parse_model(spec[0], args_payload, ErrorCode.INVALID_ARGS)
            timeout = self._timeouts.get(type_name, self._timeout_s)
            try:
                async with asyncio.timeout(timeout):
                    result = await handler(args)
            except TimeoutError as exc:
                raise BridgeError(
                    ErrorCode.TIMEOUT, f"{type_name} took longer than {timeout:g}s"
                ) from exc
            if not isinstance(result, spec[1]):
                raise TypeError(f"{type_name} handler returned {type(result).__name__}")
            return {"ok": True, "result": result.model_dump(mode="json"), "error": None}
        except BridgeError as exc:
            return CommandResult(ok=False, error=exc.to_body()).model_dump(mode="json")
        except Exception:
            log.exception("command %s failed", type_name)
            body = ErrorBody(code=ErrorCode.INTERNAL, message=f"internal error in {type_name}")
            return CommandResult(ok=False, error=body).model_dump(mode="json")

    def _on_ack(self, frame: Frame) -> None:
        try:
            ack = parse_model(Ack, frame.payload, ErrorCode.MALFORMED_FRAME)
        except BridgeError as exc:
            self._spawn(self._send_error(exc, frame.id))
            return
        for msg_id in ack.ids:
            entry = self._outbox.pop(msg_id, None)
            if entry is not None and entry[0] == "result":
                self._done[msg_id] = (entry[1], entry[2])
                while len(self._done) > DONE_CACHE_SIZE:
                    self._done.popitem(last=False)
            elif entry is not None:
                self._acked_events[msg_id] = None
                while len(self._acked_events) > DONE_CACHE_SIZE:
                    self._acked_events.popitem(last=False)
            for future in self._ack_waiters.pop(msg_id, []):
                if not future.done():
                    future.set_result(None)

    def _set_state(self, state: LinkState, detail: str) -> None:
        self.state = state
        if self._on_state is not None:
            self._on_state(state, detail)
