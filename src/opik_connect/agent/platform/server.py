"""The platform's websocket server: the runner registry daemons connect to, and its events.

Close codes (see protocol/codes.py): 1009 for a frame over MAX_FRAME_BYTES (enforced by websockets'
max_size), CLOSE_AUTH_FAILED (4401) for an unknown runner, a bad Hello signature, a replayed
Hello, an expired or refused pairing; CLOSE_PROTOCOL_VERSION (4426) for a version we do not speak;
1013 (try again later) when a pairing cannot wait for an operator (too many wait, or newer
requests from the same address replaced it); CLOSE_DRAINING (1012, service restart) when the
platform drains: the daemon reconnects, to another replica if the URL leads to several.
While draining, websocket upgrades (daemons, new sessions) get HTTP 503; reads still answer.
Everything that can be answered (not JSON, wrong types, bad signatures after the handshake) gets
a FrameError reply and the connection stays usable.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from pydantic import BaseModel
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from opik_connect.agent.platform.activity import Activity
from opik_connect.agent.platform.client_address import trusted_set
from opik_connect.agent.platform.handshake import Handshake, SinkGrants
from opik_connect.agent.platform.log_context import RUNNER_ID
from opik_connect.agent.platform.ops_http import OpsEndpoints
from opik_connect.agent.platform.pairing import (
    MAX_PENDING_PAIRINGS,
    MAX_PENDING_PAIRINGS_PER_SOURCE,
    PairingDesk,
)
from opik_connect.agent.platform.runner_handle import RunnerHandle, RunnerInfo
from opik_connect.link.auth import PairingRecord, PairingStore
from opik_connect.link.caches import BoundedIds
from opik_connect.link.platform_session import SEEN_CACHE_SIZE
from opik_connect.protocol import (
    CLOSE_AUTH_FAILED,
    CLOSE_DRAINING,
    MAX_FRAME_BYTES,
    PairingConfirmed,
    PairRequest,
)

log = logging.getLogger(__name__)

__all__ = ["EventCallback", "Platform", "PlatformHooks", "RunnerHandle", "RunnerInfo"]

EventCallback = Callable[[RunnerHandle, str, BaseModel], Any]
"""Called with (runner, event type, event model); may be sync or async."""
EventGate = Callable[[RunnerHandle, str, BaseModel], Awaitable[bool]]
"""Admits an event to the subscribers, or drops it (a decision another replica already took)."""
RunnerWatcher = Callable[[RunnerHandle], Any]
"""Called when a runner connects or disconnects; may be sync or async."""


class PlatformHooks(Protocol):
    """Other services on the same port (e.g. agent.platform.http_api.PlatformHttpApi)."""

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None: ...

    async def handle_websocket(self, connection: ServerConnection) -> bool:
        """True if it served this connection; False leaves it to the daemon link."""
        ...


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
        max_pending_pairings: int = MAX_PENDING_PAIRINGS,
        max_pending_pairings_per_source: int = MAX_PENDING_PAIRINGS_PER_SOURCE,
        trusted_proxies: Iterable[str] = (),
    ) -> None:
        self.host = host
        self._ssl = ssl_context
        self.http_api: PlatformHooks | None = None
        """Set before start() to serve HTTP reads and other websockets on the same port."""
        self.port = port
        self.pairings = PairingDesk(
            pairing_store,
            ttl_s=pairing_ttl_s,
            max_pending=max_pending_pairings,
            max_pending_per_source=max_pending_pairings_per_source,
        )
        self._handshake = Handshake(
            self.pairings,
            operator_token=operator_token or secrets.token_urlsafe(32),
            heartbeat_interval_s=heartbeat_interval_s,
            on_pair_request=on_pair_request,
        )
        self._handshake.trusted_proxies = trusted_set(trusted_proxies)
        self._command_timeout_s = command_timeout_s
        self._on_runner_change = on_runner_change
        self._runners: dict[str, RunnerHandle] = {}
        self._runners_changed = asyncio.Condition()
        self._subscribers: list[EventCallback] = []
        self._watchers: list[RunnerWatcher] = []
        self.event_gate: EventGate | None = None
        """Set by a replica router (agent.platform.replica_router); None admits every event."""
        self._gated: dict[str, asyncio.Future[bool]] = {}
        self._seen_events = BoundedIds(SEEN_CACHE_SIZE)
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.activity = Activity()
        self.draining = False
        self.ops = OpsEndpoints(token=self.operator_token, is_draining=lambda: self.draining)
        """/healthz, /readyz, /metrics; add readiness checks and the metrics renderer to it."""

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

    async def stop(self, close_code: int = CloseCode.GOING_AWAY, reason: str = "") -> None:
        server, self._server = self._server, None
        if server is None:
            return
        if close_code != CloseCode.GOING_AWAY:
            closing = [connection.close(close_code, reason) for connection in server.connections]
            await asyncio.gather(*closing, return_exceptions=True)
        server.close(close_connections=True)
        await server.wait_closed()

    async def drain(self, timeout_s: float) -> bool:
        """Take no new work, let commands and sessions in flight finish (up to timeout_s), then
        close every connection with CLOSE_DRAINING so daemons reconnect. True if all finished."""
        self.draining = True
        log.info("draining: taking no new work", extra=self.activity.counts())
        try:
            async with asyncio.timeout(timeout_s):
                await self.activity.wait_idle()
            finished = True
        except TimeoutError:
            finished = False
            log.warning("drain deadline passed with work in flight", extra=self.activity.counts())
        await self.stop(CLOSE_DRAINING, "platform draining")
        log.info("drained", extra={"finished": finished})
        return finished

    async def __aenter__(self) -> Platform:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self._ssl else 'ws'}://{host}:{self.port}"

    @property
    def operator_token(self) -> str:
        return self._handshake.operator_token

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self._ssl

    def grant_trace_sink(self, grants: SinkGrants) -> None:
        """Every Welcome from now on tells the runner where its suite traces may go."""
        self._handshake.sink_grants = grants

    async def link_key(self, runner_id: str) -> bytes | None:
        """A paired runner's link key (what its sink keys are signed with); None if unpaired.
        With replicas, as the shared store holds it: a key another replica granted works here."""
        record = await self.pairings.lookup(runner_id)
        return record.link_key() if record is not None else None

    def pre_pair(
        self, runner_id: str, activation_key: str, *, runner_name: str = "", project: str = ""
    ) -> PairingRecord:
        """Pair without an operator (the embedded platform): returns the record for the daemon."""
        return self.pairings.pre_pair(
            runner_id, activation_key, runner_name=runner_name, project=project
        )

    def confirm_pairing(self, code: str) -> PairingConfirmed:
        """The operator confirms the code the daemon showed; unknown or expired -> not_paired."""
        return self.pairings.confirm(code, time.time())

    def runners(self) -> list[RunnerInfo]:
        return [handle.info() for handle in self._runners.values()]

    def runner(self, runner_id: str) -> RunnerHandle:
        return self._runners[runner_id]

    async def wait_runner(self, runner_id: str | None = None) -> RunnerHandle:
        """The runner (or the first to connect), once it is connected."""

        def connected() -> RunnerHandle | None:
            for handle in self._runners.values():
                if (runner_id is None or handle.runner_id == runner_id) and handle.connected:
                    return handle
            return None

        async with self._runners_changed:
            return await self._runners_changed.wait_for(connected)

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Receive every acknowledged event (FilesChanged, ProposalDecided, SuiteResult)."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def watch_runners(self, watcher: RunnerWatcher) -> Callable[[], None]:
        """Be told of each connect and disconnect (a replica router publishes where runners are)."""
        self._watchers.append(watcher)
        return lambda: self._watchers.remove(watcher)

    def event_queue(self) -> asyncio.Queue[tuple[RunnerHandle, str, BaseModel]]:
        queue: asyncio.Queue[tuple[RunnerHandle, str, BaseModel]] = asyncio.Queue()
        self.subscribe(lambda runner, kind, event: queue.put_nowait((runner, kind, event)))
        return queue

    async def _runner_changed(self, handle: RunnerHandle) -> None:
        async with self._runners_changed:
            self._runners_changed.notify_all()
        if self._on_runner_change is not None:
            self._on_runner_change(handle.info())
        for watcher in list(self._watchers):
            self._keep(watcher(handle))

    def _publish(
        self, runner: RunnerHandle, type_name: str, event: BaseModel
    ) -> asyncio.Future[bool] | None:
        """Fan the event out now, or once the gate admits it: the future says it was kept
        (admitted, or a copy of one kept before); False if the gate failed."""
        if self.event_gate is None:
            self._fan_out(runner, type_name, event)
            return None
        # One gate at a time per runner: a runner's events reach subscribers in arrival order.
        runner_id, gate = runner.runner_id, self.event_gate
        previous = self._gated.get(runner_id)
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._gated[runner_id] = done

        async def gated() -> None:
            try:
                if previous is not None:
                    await asyncio.wait([previous])
                if await gate(runner, type_name, event):
                    self._fan_out(runner, type_name, event)
                done.set_result(True)
            except Exception:
                log.exception("event gate failed on %s", type_name)
            finally:
                if not done.done():
                    done.set_result(False)
                if self._gated.get(runner_id) is done:
                    del self._gated[runner_id]

        self._keep(gated())
        return done

    def _fan_out(self, runner: RunnerHandle, type_name: str, event: BaseModel) -> None:
        for callback in list(self._subscribers):
            try:
                outcome = callback(runner, type_name, event)
            except Exception:
                log.exception("event subscriber failed on %s", type_name)
                continue
            self._keep(outcome)

    def _keep(self, outcome: object) -> None:
        """Run an async callback's outcome as a task the platform keeps until it is done."""
        if inspect.isawaitable(outcome):
            task = asyncio.ensure_future(outcome)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        return await self.ops.front_door(connection, request, self.http_api)

    async def _connection(self, ws: ServerConnection) -> None:
        if self.http_api is not None and await self.http_api.handle_websocket(ws):
            return
        try:
            accepted = await self._handshake.accept(ws)
            if accepted is None:
                return
            hello = accepted.hello
            RUNNER_ID.set(hello.runner_id)
            handle = self._runners.get(hello.runner_id)
            if handle is None:
                handle = RunnerHandle(
                    hello.runner_id,
                    hello.runner_name,
                    hello.project,
                    self._command_timeout_s,
                    seen_events=self._seen_events,
                    publish=self._publish,
                    activity=self.activity,
                )
                self._runners[hello.runner_id] = handle
            handle.session.defer_decision_acks = self.event_gate is not None
            await handle.attach(ws, accepted.signer, hello)
            await self._runner_changed(handle)
            try:
                await handle.serve(ws)
            finally:
                if handle.detach(ws):
                    await self._runner_changed(handle)
        except ConnectionClosed:
            return
        except TimeoutError:
            await ws.close(CLOSE_AUTH_FAILED, "no handshake in time")
