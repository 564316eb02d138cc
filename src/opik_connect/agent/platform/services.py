"""Everything the platform serves besides the daemon link, mounted on one Platform.

    services = PlatformServices(config=config, traces=TraceStore.from_env(root / ".opik/traces"))
    daemon = Daemon(root, config, platform_setup=services.setup)   # embedded platform
    ...
    await services.aclose()                                        # after the daemon stopped

`setup` opens the store, records every daemon event in it, starts the session manager and mounts
the HTTP API (token = the platform's operator token, which the daemon writes to its run file).
It also starts the trace sink (the Opik REST API the SDK logs to) on a port of its own (a free
one unless `sink_port` names it), on loopback unless told (a standalone platform: its own host,
with its TLS), kept in the same kind of store as the platform's (on PostgreSQL, shared by the
replicas, so any replica reads what another took in); `GET /v1/traces/sink` on the platform
names it, Ollie's trace store reads it, and every Welcome grants the runner a sink key its suite
workers log with (agent/traces/sink_keys.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from opik_connect.agent.ollie.loop import OllieLimits
from opik_connect.agent.ollie.sessions import OllieSessions, SessionDriver, ollie_driver
from opik_connect.agent.platform.arrival_order import ArrivalOrder
from opik_connect.agent.platform.http_api import PlatformHttpApi
from opik_connect.agent.platform.runner_router import RunnerRouter
from opik_connect.agent.platform.server import Platform, RunnerHandle
from opik_connect.agent.platform.store import PlatformStore, is_postgres_url, open_platform_store
from opik_connect.agent.traces.sink_http import TraceSinkServer
from opik_connect.agent.traces.sink_store import open_sink_store
from opik_connect.agent.traces.store import TraceStore
from opik_connect.config import ProjectConfig, load_project_config
from opik_connect.link.sink_key import KEY_TTL_S, issue_sink_key
from opik_connect.protocol import TraceSinkAddress, TraceSinkGrant

if TYPE_CHECKING:
    from opik_connect.agent.platform.replica_router import ReplicaRouter

log = logging.getLogger(__name__)


class PlatformServices:
    """Store + sessions + HTTP API for one Platform; `setup` it before the platform starts."""

    def __init__(
        self,
        *,
        config: ProjectConfig | None = None,
        traces: TraceStore | None = None,
        limits: OllieLimits | None = None,
        transcript_dir: Path | None = None,
        driver: SessionDriver | None = None,
        store: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        sink_host: str = "127.0.0.1",
        sink_port: int = 0,
        sink_public_port: int | None = None,
    ) -> None:
        """Sessions run Ollie (model from config, key from env) unless a driver is given.

        `store` is a postgresql:// URL or a SQLite file (default: the state dir's file). On
        PostgreSQL this platform is one of several replicas: its sessions reach runners
        connected to any of them (agent.platform.replica_router).
        """
        self._config = config
        self._traces = traces or TraceStore.from_env()
        self._limits = limits
        self._transcript_dir = transcript_dir
        self._driver = driver
        self._store_location = store
        self._env = env
        self._sink_host = sink_host
        self._sink_port = sink_port
        self._sink_public_port = sink_public_port
        self.router: ReplicaRouter | None = None
        self.store: PlatformStore | None = None
        self.trace_sink: TraceSinkServer | None = None
        self.sessions: OllieSessions | None = None
        self.http_api: PlatformHttpApi | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._recorded: Counter[str] = Counter()
        self._recorded_more = asyncio.Event()

    @property
    def traces(self) -> TraceStore:
        """The trace store Ollie reads (the sink, once set up, among its sources)."""
        return self._traces

    async def setup(self, platform: Platform) -> None:
        self.store = await open_platform_store(self._store_location)
        store = self.store
        sink_store = await open_sink_store(self._store_location)
        self.trace_sink = TraceSinkServer(
            sink_store,
            platform.operator_token,
            host=self._sink_host,
            port=self._sink_port,
            ssl_context=platform.ssl_context,
            runner_keys=platform.link_key,
        )
        try:
            await self.trace_sink.start()
        except OSError as exc:
            where = f"{self._sink_host}:{self._sink_port}"
            raise OSError(exc.errno, f"trace sink: cannot listen on {where}: {exc}") from exc
        self._traces.sink = sink_store
        platform.grant_trace_sink(self._grant)

        in_order = ArrivalOrder()

        def record(runner: RunnerHandle, type_name: str, event: BaseModel):
            write = in_order.after_previous(
                runner.runner_id, store.record_event(runner.runner_id, event)
            )
            write.add_done_callback(lambda done: self._note_recorded(type_name, done))
            return write

        self._unsubscribe = platform.subscribe(record)
        driver = self._driver or ollie_driver(
            store=store,
            traces=self._traces,
            config=self._config,
            limits=self._limits,
            transcript_dir=self._transcript_dir,
            env=self._env,
        )
        directory: RunnerRouter = platform
        if is_postgres_url(self._store_location):
            from opik_connect.agent.platform.replica_router import ReplicaRouter  # needs psycopg

            self.router = await ReplicaRouter.start(platform, store, str(self._store_location))
            directory = self.router
            platform.ops.ready_checks.append(self.router.ready)
        self.sessions = OllieSessions(
            directory, store, driver, env=self._env, activity=platform.activity
        )
        platform.ops.ready_checks.append(lambda: store.list_sessions(limit=1))
        self.http_api = PlatformHttpApi(
            token=platform.operator_token,
            store=store,
            sessions=self.sessions,
            runners=directory.runners,
            trace_sink=self._sink_address(),
            followers=self.router.followers if self.router is not None else None,
        )
        platform.http_api = self.http_api

    async def wait_recorded(self, type_name: str, count: int = 1) -> None:
        """Returns once `count` daemon events of the type (e.g. "ProposalDecided") are in the
        store, with all that recording them wrote (a decision's fix record): what the read
        endpoints show of an event is there from then on. Counted from setup; a failed write is
        not (it is logged)."""
        while self._recorded[type_name] < count:
            await self._recorded_more.wait()

    def _note_recorded(self, type_name: str, write: asyncio.Future[None]) -> None:
        if write.cancelled():
            return
        if (failed := write.exception()) is not None:
            log.error("recording a %s event failed", type_name, exc_info=failed)
            return
        self._recorded[type_name] += 1
        woken, self._recorded_more = self._recorded_more, asyncio.Event()
        woken.set()

    def _sink_address(self) -> TraceSinkAddress | None:
        """What `GET /v1/traces/sink` says: the port and TLS daemons are granted, too."""
        sink = self.trace_sink
        if sink is None:
            return None
        return TraceSinkAddress(
            url=sink.url, port=self._sink_public_port or sink.port, tls=sink.tls
        )

    def _grant(self, runner_id: str, link_key: bytes) -> TraceSinkGrant | None:
        """A fresh sink key for the runner saying hello: writes only, for KEY_TTL_S. The port is
        the public one when a proxy fronts the sink (the daemon dials it on the platform's host)."""
        sink = self.trace_sink
        if sink is None:
            return None
        expires_at = int(time.time()) + KEY_TTL_S
        key = issue_sink_key(runner_id, link_key, expires_at)
        port = self._sink_public_port or sink.port
        return TraceSinkGrant(port=port, tls=sink.tls, key=key, expires_at=expires_at)

    async def aclose(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.sessions is not None:
            await self.sessions.aclose()
        if self.router is not None:
            await self.router.aclose()
            self.router = None
        if self.trace_sink is not None:
            await self.trace_sink.stop()
            await self.trace_sink.store.close()
            self.trace_sink = None
        if self.store is not None:
            await self.store.close()
            self.store = None


TRACES_DIR = Path(".opik") / "traces"
"""Where a project keeps trace files (as `opik-connect suite add --trace` reads them)."""


def enclosing_work_tree(start: Path) -> Path | None:
    """The git work tree around `start` (where a daemon runs), or None."""
    for path in (start, *start.parents):
        if (path / ".git").exists():
            return path
    return None


STORE_OVERRIDE: ContextVar[str | None] = ContextVar("opik_connect_store", default=None)
"""`opik-connect platform --store`: set around setup_platform, it wins over the config's `store`."""
SINK_PORT_OVERRIDE: ContextVar[int | None] = ContextVar("opik_connect_sink_port", default=None)
"""`opik-connect platform --sink-port`: likewise, over the config's `sink-port`."""
SINK_PUBLIC_PORT_OVERRIDE: ContextVar[int | None] = ContextVar(
    "opik_connect_sink_public_port", default=None
)
"""`opik-connect platform --sink-public-port`: likewise, over the config's `sink-public-port`."""


async def platform_services_part(platform: Platform) -> None:
    """The platform part (agent/platform/cli.py PLATFORM_PARTS) that mounts PlatformServices.

    Run inside a project (the embedded platform), Ollie takes the project's model and its
    .opik/traces; elsewhere (a standalone platform), the defaults. Both also fetch traces from the
    Opik server named by OPIK_URL_OVERRIDE. The store is STORE_OVERRIDE, else the project's
    `store`, else the state dir's SQLite file; the sink's port is SINK_PORT_OVERRIDE, else the
    project's `sink-port`, else a free one (and the port granted to daemons likewise, from
    `sink-public-port`). The services live as long as the process.
    """
    root = await asyncio.to_thread(enclosing_work_tree, Path.cwd())
    config = await asyncio.to_thread(load_project_config, root) if root else ProjectConfig()
    traces = TraceStore.from_env(root / TRACES_DIR if root else None)
    store = STORE_OVERRIDE.get() or config.store
    if store and root and not is_postgres_url(store):
        store = str(root / store)  # a relative SQLite path in pyproject is the project's
    sink_port = SINK_PORT_OVERRIDE.get()
    if sink_port is None:
        sink_port = config.sink_port or 0
    await PlatformServices(
        config=config,
        traces=traces,
        store=store,
        sink_host=platform.host,
        sink_port=sink_port,
        sink_public_port=SINK_PUBLIC_PORT_OVERRIDE.get() or config.sink_public_port,
    ).setup(platform)
