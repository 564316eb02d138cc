"""The platform's websocket server: pairs daemons, authenticates them, routes commands to them.

Close codes (see protocol.py): 1009 for a frame over MAX_FRAME_BYTES (enforced by websockets'
max_size), CLOSE_AUTH_FAILED (4401) for an unknown runner, a bad Hello signature, a replayed
Hello, an expired or refused pairing; CLOSE_PROTOCOL_VERSION (4426) for a version we do not speak;
1013 (try again later) when too many pairings already wait for an operator.
Everything that can be answered (not JSON, wrong types, bad signatures after the handshake) gets
a FrameError reply and the connection stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import logging
import secrets
import ssl
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from opik_connect.link.auth import (
    FrameSigner,
    PairingRecord,
    PairingStore,
    check_signature,
    connection_id,
    decode_activation_key,
    hello_connection_id,
    new_nonce,
    new_pairing_code,
    normalize_pairing_code,
)
from opik_connect.link.frames import decode_frame, encode, parse_model
from opik_connect.protocol import (
    CLOSE_AUTH_FAILED,
    CLOSE_PROTOCOL_VERSION,
    COMMANDS,
    EVENTS,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Ack,
    BridgeError,
    CommandResult,
    ConfirmPairing,
    ErrorCode,
    Frame,
    FrameError,
    FrameKind,
    Hello,
    ListFilesArgs,
    ListFilesResult,
    Paired,
    PairingConfirmed,
    PairPending,
    PairRequest,
    ProposalDecided,
    ProposeChangeArgs,
    ProposeChangeResult,
    ReadFileArgs,
    ReadFileResult,
    RootSummary,
    RunSuiteArgs,
    SearchFilesArgs,
    SearchFilesResult,
    SuiteRunSummary,
    Welcome,
)

log = logging.getLogger(__name__)

EventCallback = Callable[["RunnerHandle", str, BaseModel], Any]
"""Called with (runner, event type, event model); may be sync or async."""

DEFAULT_TIMEOUTS = {"RunSuite": 3600.0}
HANDSHAKE_TIMEOUT_S = 15.0
ACK_DELAY_S = 0.02
CLOSE_TRY_AGAIN_LATER = 1013
"""RFC 6455 'try again later': too many pairings are waiting for an operator."""
SEEN_CACHE_SIZE = 8192


class PlatformHooks(Protocol):
    """Other services on the same port (e.g. agent.platform_http_api.PlatformHttpApi)."""

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None: ...

    async def handle_websocket(self, connection: ServerConnection) -> bool:
        """True if it served this connection; False leaves it to the daemon link."""
        ...


class RunnerInfo(BaseModel):
    """One row of the runner registry."""

    runner_id: str
    name: str
    project: str
    connected: bool
    connected_since: float | None
    last_heartbeat: float | None
    root: RootSummary | None


class _Bounded(OrderedDict[str, None]):
    """A bounded set of ids already handled, for exactly-once delivery."""

    def add(self, key: str) -> None:
        self[key] = None
        while len(self) > SEEN_CACHE_SIZE:
            self.popitem(last=False)


class PlatformConnection:
    """One authenticated websocket to a daemon; sends are sealed and sent in seq order."""

    def __init__(self, ws: ServerConnection, signer: FrameSigner) -> None:
        self.ws = ws
        self.signer = signer
        self._lock = asyncio.Lock()
        self._acks: list[str] = []
        self._ack_flush: asyncio.TimerHandle | None = None
        self._ack_task: asyncio.Task[None] | None = None

    def ack(self, msg_id: str) -> None:
        """Acks are batched over ACK_DELAY_S: one frame for many results keeps them off the
        hot path. A batch lost with the connection only means the daemon re-sends; ids dedupe."""
        self._acks.append(msg_id)
        if self._ack_flush is None:
            loop = asyncio.get_running_loop()
            self._ack_flush = loop.call_later(ACK_DELAY_S, self._start_flush)

    def _start_flush(self) -> None:
        self._ack_flush = None
        self._ack_task = asyncio.ensure_future(self._flush_acks())

    async def _flush_acks(self) -> None:
        ids, self._acks = self._acks, []
        if ids:
            with contextlib.suppress(ConnectionClosed):
                await self.send("ack", "Ack", uuid.uuid4().hex, Ack(ids=ids).model_dump())

    async def send(self, kind: FrameKind, type_name: str, msg_id: str, payload: dict) -> None:
        async with self._lock:
            await self.ws.send(self.signer.seal_text(kind, type_name, msg_id, payload))

    async def send_error(self, exc: BridgeError, ref: str | None) -> None:
        body = FrameError(error=exc.to_body(), ref=ref).model_dump(mode="json")
        with contextlib.suppress(ConnectionClosed):
            await self.send("error", "FrameError", uuid.uuid4().hex, body)


@dataclass
class _Pending:
    type_name: str
    payload: dict[str, Any]
    future: asyncio.Future[CommandResult]


class RunnerHandle:
    """A paired daemon as Ollie sees it (implements agent.runner_api.Runner).

    Commands outlive connections: one sent while the daemon is away, or lost in a drop, is sent
    again when it reconnects, and the first result for its id is the only one delivered.
    """

    def __init__(self, runner_id: str, name: str, project: str, timeout_s: float) -> None:
        self.runner_id = runner_id
        self.name = name
        self.project = project
        self.root: RootSummary | None = None
        self.connected_since: float | None = None
        self.last_heartbeat: float | None = None
        self._timeout_s = timeout_s
        self._conn: PlatformConnection | None = None
        self._pending: dict[str, _Pending] = {}
        self._delivered = _Bounded()
        self._decisions: dict[str, ProposalDecided] = {}
        self._decision_waiters: dict[str, list[asyncio.Future[ProposalDecided]]] = {}
        self._connected = asyncio.Event()

    # --- Runner protocol ------------------------------------------------------------------------

    async def read_file(self, args: ReadFileArgs) -> ReadFileResult:
        return await self.call("ReadFile", args)  # type: ignore[return-value]

    async def list_files(self, args: ListFilesArgs) -> ListFilesResult:
        return await self.call("ListFiles", args)  # type: ignore[return-value]

    async def search_files(self, args: SearchFilesArgs) -> SearchFilesResult:
        return await self.call("SearchFiles", args)  # type: ignore[return-value]

    async def propose_change(self, args: ProposeChangeArgs) -> ProposeChangeResult:
        return await self.call("ProposeChange", args)  # type: ignore[return-value]

    async def run_suite(self, args: RunSuiteArgs) -> SuiteRunSummary:
        return await self.call("RunSuite", args)  # type: ignore[return-value]

    async def wait_decision(self, proposal_id: str) -> ProposalDecided:
        """Resolves on the daemon's ProposalDecided event; bound it with asyncio.timeout."""
        if proposal_id in self._decisions:
            return self._decisions[proposal_id]
        future: asyncio.Future[ProposalDecided] = asyncio.get_running_loop().create_future()
        self._decision_waiters.setdefault(proposal_id, []).append(future)
        return await future

    # --- generic call ---------------------------------------------------------------------------

    async def call(
        self, type_name: str, args: BaseModel, *, timeout_s: float | None = None
    ) -> BaseModel:
        """Send one command and await its result; BridgeError carries the daemon's code."""
        spec = COMMANDS.get(type_name)
        if spec is None:
            raise BridgeError(ErrorCode.UNKNOWN_TYPE, f"unknown command type {type_name!r}")
        return await self.call_raw(type_name, args.model_dump(mode="json"), timeout_s=timeout_s)

    async def call_raw(
        self, type_name: str, payload: dict[str, Any], *, timeout_s: float | None = None
    ) -> BaseModel:
        """Like call() but with an unchecked payload: lets tests send what a bad peer would."""
        command_id = uuid.uuid4().hex
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = _Pending(type_name, payload, future)
        timeout = timeout_s or DEFAULT_TIMEOUTS.get(type_name, self._timeout_s)
        try:
            await self._send_command(command_id)
            try:
                async with asyncio.timeout(timeout):
                    outcome = await future
            except TimeoutError as exc:
                raise BridgeError(
                    ErrorCode.TIMEOUT, f"no result for {type_name} within {timeout:g}s"
                ) from exc
        finally:
            self._pending.pop(command_id, None)
        if not outcome.ok:
            assert outcome.error is not None
            raise BridgeError.from_body(outcome.error)
        spec = COMMANDS.get(type_name)
        assert spec is not None
        return parse_model(spec[1], outcome.result or {}, ErrorCode.INTERNAL)

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def wait_connected(self) -> None:
        await self._connected.wait()

    def info(self) -> RunnerInfo:
        return RunnerInfo(
            runner_id=self.runner_id,
            name=self.name,
            project=self.project,
            connected=self.connected,
            connected_since=self.connected_since,
            last_heartbeat=self.last_heartbeat,
            root=self.root,
        )

    # --- connection plumbing --------------------------------------------------------------------

    async def _send_command(self, command_id: str) -> None:
        pending = self._pending.get(command_id)
        conn = self._conn
        if pending is None or conn is None:
            return  # sent when the daemon (re)connects
        with contextlib.suppress(ConnectionClosed):
            await conn.send("command", pending.type_name, command_id, pending.payload)

    async def _attach(self, conn: PlatformConnection, hello: Hello) -> None:
        old = self._conn
        self._conn = conn
        self.name, self.project, self.root = hello.runner_name, hello.project, hello.root
        self.connected_since = self.last_heartbeat = time.time()
        self._connected.set()
        if old is not None:
            await old.ws.close(1000, "superseded by a new connection")
        for command_id in list(self._pending):
            await self._send_command(command_id)

    def _detach(self, conn: PlatformConnection) -> bool:
        """False if a newer connection already replaced this one."""
        if self._conn is not conn:
            return False
        self._conn = None
        self.connected_since = None
        self._connected.clear()
        return True

    async def _on_result(self, conn: PlatformConnection, frame: Frame) -> None:
        outcome = parse_model(CommandResult, frame.payload, ErrorCode.MALFORMED_FRAME)
        pending = self._pending.get(frame.id)
        if pending is not None and not pending.future.done() and frame.id not in self._delivered:
            self._delivered.add(frame.id)
            pending.future.set_result(outcome)
        conn.ack(frame.id)

    def _on_frame_error(self, error: FrameError) -> None:
        """A daemon refusing one of our commands (e.g. auth_failed) fails that command."""
        pending = self._pending.get(error.ref or "")
        if pending is not None and not pending.future.done():
            outcome = CommandResult(ok=False, error=error.error)
            pending.future.set_result(outcome)

    def _on_decision(self, decided: ProposalDecided) -> bool:
        """False if this proposal's decision arrived before: a decision is taken once."""
        if decided.proposal_id in self._decisions:
            return False
        self._decisions[decided.proposal_id] = decided
        for future in self._decision_waiters.pop(decided.proposal_id, []):
            if not future.done():
                future.set_result(decided)
        return True


@dataclass
class _PendingPairing:
    code: str
    request: PairRequest
    expires_at: float
    confirmed: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Platform:
    """The websocket server daemons dial, plus the registry of runners it has seen.

    stop() only closes the listener and connections; runners, pending commands and pairings stay,
    so start() again (same port) resumes where the link left off.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        pairing_store: PairingStore | None = None,
        pairing_ttl_s: float = 300.0,
        heartbeat_interval_s: float = 10.0,
        command_timeout_s: float = 120.0,
        operator_token: str | None = None,
        on_pair_request: Callable[[PairRequest], None] | None = None,
        on_runner_change: Callable[[RunnerInfo], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_pending_pairings: int = 32,
    ) -> None:
        self.host = host
        self._ssl = ssl_context
        self.http_api: PlatformHooks | None = None
        """Set before start() to serve HTTP reads and other websockets on the same port."""
        self.port = port
        self._store = pairing_store
        self._paired: dict[str, PairingRecord] = pairing_store.all() if pairing_store else {}
        self._pairing_ttl_s = pairing_ttl_s
        self._heartbeat_interval_s = heartbeat_interval_s
        self._command_timeout_s = command_timeout_s
        self.operator_token = operator_token or secrets.token_urlsafe(32)
        self._on_pair_request = on_pair_request
        self._on_runner_change = on_runner_change
        self._pairings: dict[str, _PendingPairing] = {}
        self._max_pending_pairings = max_pending_pairings
        self._runners: dict[str, RunnerHandle] = {}
        self._subscribers: list[EventCallback] = []
        self._seen_events = _Bounded()
        self._seen_hello_nonces = _Bounded()
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await serve(
            self._connection,
            self.host,
            self.port,
            max_size=MAX_FRAME_BYTES,
            ssl=self._ssl,
            process_request=self._process_request,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close(close_connections=True)
            await server.wait_closed()

    async def __aenter__(self) -> Platform:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self._ssl else 'ws'}://{host}:{self.port}"

    # --- pairing --------------------------------------------------------------------------------

    def pre_pair(
        self, runner_id: str, activation_key: str, *, runner_name: str = "", project: str = ""
    ) -> PairingRecord:
        """Pair without an operator (the embedded platform): returns the record for the daemon."""
        decode_activation_key(activation_key)
        record = PairingRecord(
            runner_id=runner_id,
            activation_key=activation_key,
            session_id=secrets.token_urlsafe(16),
            runner_name=runner_name,
            project=project,
        )
        self._remember(record)
        return record

    def confirm_pairing(self, code: str) -> PairingConfirmed:
        """The operator confirms the code the daemon showed; unknown or expired -> not_paired."""
        pending = self._pairings.get(normalize_pairing_code(code))
        if pending is None:
            raise BridgeError(ErrorCode.NOT_PAIRED, "no pairing request with that code")
        if time.time() > pending.expires_at:
            self._pairings.pop(pending.code, None)
            raise BridgeError(ErrorCode.NOT_PAIRED, "pairing code expired")
        self._pairings.pop(pending.code, None)
        request = pending.request
        record = PairingRecord(
            runner_id=request.runner_id,
            activation_key=request.activation_key,
            session_id=secrets.token_urlsafe(16),
            runner_name=request.runner_name,
            project=request.project,
        )
        self._remember(record)
        if not pending.confirmed.done():
            pending.confirmed.set_result(record.session_id)
        return PairingConfirmed(
            runner_id=request.runner_id, runner_name=request.runner_name, project=request.project
        )

    def _remember(self, record: PairingRecord) -> None:
        self._paired[record.runner_id] = record
        if self._store is not None:
            self._store.put(record.runner_id, record)

    # --- registry and events --------------------------------------------------------------------

    def runners(self) -> list[RunnerInfo]:
        return [handle.info() for handle in self._runners.values()]

    def runner(self, runner_id: str) -> RunnerHandle:
        return self._runners[runner_id]

    async def wait_runner(self, runner_id: str | None = None) -> RunnerHandle:
        """The runner (or the first to connect), once it is connected."""
        while True:
            for handle in self._runners.values():
                if (runner_id is None or handle.runner_id == runner_id) and handle.connected:
                    return handle
            await asyncio.sleep(0.02)

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Receive every acknowledged event (FilesChanged, ProposalDecided, SuiteResult)."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def event_queue(self) -> asyncio.Queue[tuple[RunnerHandle, str, BaseModel]]:
        queue: asyncio.Queue[tuple[RunnerHandle, str, BaseModel]] = asyncio.Queue()
        self.subscribe(lambda runner, kind, event: queue.put_nowait((runner, kind, event)))
        return queue

    def _runner_changed(self, handle: RunnerHandle) -> None:
        if self._on_runner_change is not None:
            self._on_runner_change(handle.info())

    def _publish(self, runner: RunnerHandle, type_name: str, event: BaseModel) -> None:
        for callback in list(self._subscribers):
            try:
                outcome = callback(runner, type_name, event)
            except Exception:
                log.exception("event subscriber failed on %s", type_name)
                continue
            if inspect.isawaitable(outcome):
                task = asyncio.ensure_future(outcome)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    # --- one connection -------------------------------------------------------------------------

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        if self.http_api is None:
            return None
        return await self.http_api.process_request(connection, request)

    async def _connection(self, ws: ServerConnection) -> None:
        if self.http_api is not None and await self.http_api.handle_websocket(ws):
            return
        try:
            accepted = await self._handshake(ws)
            if accepted is None:
                return
            handle, conn = accepted
            try:
                await self._serve(handle, conn)
            finally:
                if handle._detach(conn):
                    self._runner_changed(handle)
        except ConnectionClosed:
            return
        except TimeoutError:
            await ws.close(CLOSE_AUTH_FAILED, "no handshake in time")

    async def _reply_unsigned_error(self, ws: ServerConnection, exc: BridgeError, ref: str | None):
        frame = Frame(
            kind="error",
            type="FrameError",
            id=uuid.uuid4().hex,
            payload=FrameError(error=exc.to_body(), ref=ref).model_dump(mode="json"),
        )
        await ws.send(encode(frame))

    async def _refuse(self, ws: ServerConnection, exc: BridgeError, ref: str | None, code: int):
        await self._reply_unsigned_error(ws, exc, ref)
        await ws.close(code, exc.message[:120])

    async def _handshake(
        self, ws: ServerConnection
    ) -> tuple[RunnerHandle, PlatformConnection] | None:
        """Answer bad frames until a PairRequest, ConfirmPairing or Hello arrives."""
        while True:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                message = await ws.recv()
            try:
                frame = decode_frame(message)
            except BridgeError as exc:
                await self._reply_unsigned_error(ws, exc, None)
                continue
            if frame.type == "PairRequest":
                if not await self._pair(ws, frame):
                    return None
            elif frame.type == "ConfirmPairing":
                await self._operator_confirm(ws, frame)
                return None
            elif frame.type == "Hello":
                return await self._hello(ws, frame)
            else:
                exc = BridgeError(ErrorCode.NOT_PAIRED, f"{frame.type} before Hello")
                await self._reply_unsigned_error(ws, exc, frame.id)

    async def _pair(self, ws: ServerConnection, frame: Frame) -> bool:
        """Hold the connection until the operator confirms the code; False if it expired."""
        try:
            request = parse_model(PairRequest, frame.payload, ErrorCode.MALFORMED_FRAME)
            decode_activation_key(request.activation_key)
        except BridgeError as exc:
            await self._reply_unsigned_error(ws, exc, frame.id)
            return True
        if len(self._pairings) >= self._max_pending_pairings:
            exc = BridgeError(ErrorCode.LIMIT_REACHED, "too many pairings waiting; retry later")
            await self._refuse(ws, exc, frame.id, CLOSE_TRY_AGAIN_LATER)
            return False
        code = new_pairing_code()
        pending = _PendingPairing(code, request, time.time() + self._pairing_ttl_s)
        self._pairings[code] = pending
        reply = PairPending(code=code, expires_at=pending.expires_at)
        await ws.send(
            encode(
                Frame(kind="control", type="PairPending", id=frame.id, payload=reply.model_dump())
            )
        )
        if self._on_pair_request is not None:
            self._on_pair_request(request)
        closed = asyncio.ensure_future(ws.wait_closed())
        try:
            # Give up as soon as the daemon goes away, so stop() never waits on an operator.
            await asyncio.wait(
                {pending.confirmed, closed},
                timeout=self._pairing_ttl_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            closed.cancel()
            if self._pairings.get(code) is pending:
                del self._pairings[code]
        if not pending.confirmed.done():
            if ws.state is State.OPEN:
                exc = BridgeError(ErrorCode.NOT_PAIRED, "pairing code expired")
                await self._refuse(ws, exc, frame.id, CLOSE_AUTH_FAILED)
            return False
        paired = Paired(session_id=pending.confirmed.result()).model_dump()
        await ws.send(encode(Frame(kind="control", type="Paired", id=frame.id, payload=paired)))
        return True

    async def _operator_confirm(self, ws: ServerConnection, frame: Frame) -> None:
        try:
            confirm = parse_model(ConfirmPairing, frame.payload, ErrorCode.MALFORMED_FRAME)
            if not hmac.compare_digest(confirm.token, self.operator_token):
                raise BridgeError(ErrorCode.AUTH_FAILED, "operator token does not match")
            confirmed = self.confirm_pairing(confirm.code)
        except BridgeError as exc:
            await self._refuse(ws, exc, frame.id, CLOSE_AUTH_FAILED)
            return
        reply = Frame(
            kind="control", type="PairingConfirmed", id=frame.id, payload=confirmed.model_dump()
        )
        await ws.send(encode(reply))
        await ws.close()

    async def _hello(
        self, ws: ServerConnection, frame: Frame
    ) -> tuple[RunnerHandle, PlatformConnection] | None:
        try:
            hello = parse_model(Hello, frame.payload, ErrorCode.MALFORMED_FRAME)
        except BridgeError as exc:
            await self._refuse(ws, exc, frame.id, CLOSE_AUTH_FAILED)
            return None
        if hello.protocol_version != PROTOCOL_VERSION:
            exc = BridgeError(
                ErrorCode.MALFORMED_FRAME,
                f"protocol version {hello.protocol_version} not supported "
                f"(this platform speaks {PROTOCOL_VERSION})",
            )
            await self._refuse(ws, exc, frame.id, CLOSE_PROTOCOL_VERSION)
            return None
        record = self._paired.get(hello.runner_id)
        try:
            if record is None:
                raise BridgeError(ErrorCode.AUTH_FAILED, "unknown runner: pair first")
            key = record.link_key()
            check_signature(key, hello_connection_id(hello.nonce), frame)
            if frame.seq != 0 or hello.nonce in self._seen_hello_nonces:
                raise BridgeError(ErrorCode.AUTH_FAILED, "replayed Hello")
        except BridgeError as exc:
            await self._refuse(ws, exc, frame.id, CLOSE_AUTH_FAILED)
            return None
        self._seen_hello_nonces.add(hello.nonce)
        platform_nonce = new_nonce()
        conn = PlatformConnection(ws, FrameSigner(key, connection_id(hello.nonce, platform_nonce)))
        welcome = Welcome(nonce=platform_nonce, heartbeat_interval_s=self._heartbeat_interval_s)
        await conn.send("control", "Welcome", uuid.uuid4().hex, welcome.model_dump())
        handle = self._runners.get(hello.runner_id)
        if handle is None:
            handle = RunnerHandle(
                hello.runner_id, hello.runner_name, hello.project, self._command_timeout_s
            )
            self._runners[hello.runner_id] = handle
        await handle._attach(conn, hello)
        self._runner_changed(handle)
        return handle, conn

    async def _serve(self, handle: RunnerHandle, conn: PlatformConnection) -> None:
        async for message in conn.ws:
            try:
                frame = conn.signer.open(message)
                await self._dispatch(handle, conn, frame)
            except BridgeError as exc:
                ref = None
                with contextlib.suppress(BridgeError):
                    ref = decode_frame(message).id
                await conn.send_error(exc, ref)

    async def _dispatch(self, handle: RunnerHandle, conn: PlatformConnection, frame: Frame):
        if frame.kind == "result":
            await handle._on_result(conn, frame)
        elif frame.kind == "event" and frame.type == "Heartbeat":
            handle.last_heartbeat = time.time()
        elif frame.kind == "event":
            model = EVENTS.get(frame.type)
            if model is None:
                raise BridgeError(ErrorCode.UNKNOWN_TYPE, f"unknown event type {frame.type!r}")
            event = parse_model(model, frame.payload, ErrorCode.INVALID_ARGS)
            conn.ack(frame.id)
            if frame.id in self._seen_events:
                return
            self._seen_events.add(frame.id)
            if isinstance(event, ProposalDecided) and not handle._on_decision(event):
                return  # the same decision again (its daemon restarted before our Ack)
            self._publish(handle, frame.type, event)
        elif frame.kind == "error":
            handle._on_frame_error(
                parse_model(FrameError, frame.payload, ErrorCode.MALFORMED_FRAME)
            )
        else:
            raise BridgeError(ErrorCode.MALFORMED_FRAME, f"unexpected {frame.kind} frame")
