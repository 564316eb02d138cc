"""Platform replicas on one PostgreSQL, a switchable loopback proxy, and daemons behind it.

The proxy stands in for the load balancer in front of the replicas: the daemon knows one URL,
and whichever replica the proxy sends it to holds its link.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from fix_flow_testkit import daemon_dialing
from platform_process_kit import PlatformProcess

from opik_connect.agent.ollie.session_request import OllieLimits
from opik_connect.agent.platform.replica_router import ReplicaRouter
from opik_connect.agent.platform.replica_wire import APPLICATION_PREFIX
from opik_connect.agent.platform.server import Platform
from opik_connect.agent.platform.services import PlatformServices
from opik_connect.agent.platform.store_postgres import PostgresPlatformStore
from opik_connect.agent.platform.store_records import SessionRecord
from opik_connect.agent.traces.store import TraceStore
from opik_connect.config import user_state_dir
from opik_connect.connect.daemon import Daemon, stable_runner_id
from opik_connect.connect.fixes.daemon_wiring import FixParts
from opik_connect.link.auth import PairingStore, new_activation_key
from opik_connect.protocol import ReadFileArgs, ReadFileResult


def scripted_ollie(tmp_path: Path, api_url: str, max_turns: int) -> dict[str, Any]:
    """The services of a replica that runs Ollie against a scripted Messages API."""
    return {
        "traces": TraceStore(),
        "limits": OllieLimits(max_turns=max_turns, wall_time_s=80),
        "transcript_dir": tmp_path / "transcripts",
        "env": {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": api_url},
    }


@asynccontextmanager
async def replica(
    dsn: str, *, operator_token: str | None = None, **services: Any
) -> AsyncIterator[tuple[Platform, PlatformServices]]:
    """One platform replica in this process, on the shared PostgreSQL store."""
    platform = Platform(operator_token=operator_token)
    services.setdefault("env", {"ANTHROPIC_API_KEY": "k"})
    part = PlatformServices(store=dsn, **services)
    await part.setup(platform)
    await platform.start()
    try:
        yield platform, part
    finally:
        await platform.stop()
        await part.aclose()


def pg_store(services: PlatformServices) -> PostgresPlatformStore:
    """The replica's store (PostgreSQL, as every replica's)."""
    assert isinstance(services.store, PostgresPlatformStore)
    return services.store


async def lost_session(dsn: str, session_id: str, events: int, **outcome: object) -> None:
    """A session of a replica that never connected (as one killed long ago): running, or
    ended with `outcome` but without its result event."""
    store = await PostgresPlatformStore.open(dsn)
    store.replica_id = "gone-" + uuid.uuid4().hex[:10]
    try:
        record = SessionRecord(
            id=session_id, question="What now?", status="running", created_at=time.time()
        )
        await store.create_session(record)
        for seq in range(1, events + 1):
            await store.add_session_event(session_id, seq, "turn_started", {"turn": seq})
        if outcome:
            await store.update_session(session_id, **outcome)
    finally:
        await store.close()


def router_of(services: PlatformServices) -> ReplicaRouter:
    assert services.router is not None
    return services.router


async def wait_location(router: ReplicaRouter, runner_id: str, replica_id: str | None) -> None:
    """Until `router` sees the runner connected to `replica_id` (None: to no replica)."""
    async with asyncio.timeout(20):
        while router.presence.location(runner_id) != replica_id:
            await router.presence.moved(runner_id)


async def wait_connections_gone(dsn: str, replica_id: str) -> None:
    """Until PostgreSQL lists no connection of a killed replica: each of its backends exits on
    its own at the EOF; pg_terminate_backend with a timeout waits for that exit (PostgreSQL 14+)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            "SELECT pg_terminate_backend(pid, 20000) FROM pg_stat_activity"
            " WHERE application_name LIKE %s",
            (APPLICATION_PREFIX + replica_id + "%",),
        )


async def pair_behind(platform: Platform, url: str, repo: Path) -> str:
    """Pair `repo`'s daemon through `platform` (so every replica knows it) for `url`."""
    runner_id = stable_runner_id(repo)
    record = platform.pre_pair(runner_id, new_activation_key(), project=repo.name)
    PairingStore(user_state_dir() / "pairings.json").put(f"{url} {repo}", record)
    await platform.pairings.settled()
    return runner_id


def daemon_at(repo: Path, url: str) -> tuple[Daemon, FixParts]:
    """A real daemon for `repo` dialing `url`; it retries quickly when a replica goes away."""
    return daemon_dialing(repo, url, backoff_max_s=0.5)


class SwitchProxy:
    """A loopback TCP proxy to one backend port at a time; switching drops no live connection,
    but a backend that dies takes its connections with it (as behind a load balancer)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> SwitchProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        pipes = [
            asyncio.ensure_future(_pipe(reader, up_writer)),
            asyncio.ensure_future(_pipe(up_reader, writer)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
                self._pipes.discard(task)
            for end in (writer, up_writer):
                end.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


class HeldRead:
    """ReadFile that waits until released, counting how often the daemon really ran it."""

    def __init__(self) -> None:
        self.runs = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def read_file(self, args: ReadFileArgs) -> ReadFileResult:
        self.runs += 1
        self.started.set()
        await self.release.wait()
        return ReadFileResult(content=f"read {args.path}", total_lines=1, truncated=False)


@dataclass
class ReplicaProcess:
    """`opik-connect platform --store <dsn>` in a child process: kill() sends SIGKILL."""

    platform: PlatformProcess
    replica_id: str

    @property
    def url(self) -> str:
        return self.platform.url

    @property
    def token(self) -> str:
        return self.platform.token

    @property
    def port(self) -> int:
        return self.platform.port

    @property
    def returncode(self) -> int | None:
        return self.platform.proc.returncode

    async def kill(self) -> None:
        if self.platform.proc.returncode is None:
            self.platform.proc.kill()
            await self.platform.proc.wait()


async def replica_process(
    dsn: str, state: Path, env: dict[str, str] | None = None
) -> ReplicaProcess:
    """The real CLI on the shared store, with its own state dir (outside any project) and
    `env` added to this process's environment."""
    await asyncio.to_thread(state.mkdir, parents=True, exist_ok=True)
    env = {**os.environ, **(env or {}), "OPIK_CONNECT_STATE_DIR": str(state)}
    platform = await PlatformProcess.start(env, state, 0, "--store", dsn)
    # Logged while the platform set up, before it listened: among the records read so far.
    joined = [record["replica"] for record in platform.records if "replica" in record]
    if len(joined) != 1:
        platform.kill()
        await platform.proc.wait()
        raise AssertionError(f"no replica id in the platform's log: {platform.raw_lines}")
    return ReplicaProcess(platform, joined[0])
