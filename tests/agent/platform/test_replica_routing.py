"""Routing between two in-process replicas on a real PostgreSQL, with daemons on loopback."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from link_testkit import RawDaemon, make_link
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from replica_testkit import replica, router_of, wait_location

from opik_connect.agent.platform.cli import confirm_pairing_remote
from opik_connect.agent.platform.replica_router import ReplicaRouter
from opik_connect.agent.platform.replica_wire import (
    APPLICATION_PREFIX,
    BROADCAST_CHANNEL,
    CommandMessage,
    replica_channel,
)
from opik_connect.agent.platform.server import Platform
from opik_connect.agent.platform.store_postgres import PostgresPlatformStore
from opik_connect.agent.platform.store_records import SessionRecord
from opik_connect.cli_errors import CliError
from opik_connect.link.auth import PairingRecord, PairingStore, new_activation_key
from opik_connect.protocol import (
    BridgeError,
    ErrorCode,
    FileChange,
    FilesChanged,
    ProposalDecided,
    ReadFileArgs,
    ReadFileResult,
)

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("state_dir")]

BIG = "x" * 99 + "\n"


async def big_read(args: ReadFileArgs) -> ReadFileResult:
    """A result far over NOTIFY's 8000 bytes."""
    return ReadFileResult(content=BIG * 1000, total_lines=1000, truncated=False)


@asynccontextmanager
async def two_replicas(
    dsn: str,
) -> AsyncIterator[tuple[Platform, ReplicaRouter, Platform, ReplicaRouter, PairingRecord]]:
    """Replicas A and B, and a runner paired through B (so both accept it)."""
    async with (
        replica(dsn) as (a, a_services),
        replica(dsn) as (b, b_services),
    ):
        record = b.pre_pair(uuid.uuid4().hex, new_activation_key())
        await b.pairings.settled()
        yield a, router_of(a_services), b, router_of(b_services), record


@asynccontextmanager
async def daemon_on(platform: Platform, record: PairingRecord) -> AsyncIterator[None]:
    """A DaemonLink serving `big_read`, while it is linked to `platform`."""
    link = make_link(platform.url, record, {"ReadFile": big_read})
    serving = asyncio.create_task(link.run())
    try:
        holder = await platform.wait_runner(record.runner_id)
        assert holder.connected
        yield
    finally:
        await link.stop()
        await serving


@asynccontextmanager
async def postgres_store(dsn: str) -> AsyncIterator[PostgresPlatformStore]:
    store = await PostgresPlatformStore.open(dsn)
    try:
        yield store
    finally:
        await store.close()


async def count(dsn: str, table: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        row = await (await conn.execute(f"SELECT count(*) FROM {table}")).fetchone()
        assert row is not None
        return row[0]


async def test_replica_large_result_travels_by_reference(tmp_path: Path, postgres_dsn: str) -> None:
    async with two_replicas(postgres_dsn) as (a, a_router, _b, b_router, record):
        async with daemon_on(a, record):
            await wait_location(b_router, record.runner_id, a_router.replica_id)
            result = await b_router.runner(record.runner_id).read_file(ReadFileArgs(path="big"))
            [listed] = [info for info in b_router.runners() if info.runner_id == record.runner_id]
        await wait_location(b_router, record.runner_id, None)
        after = [info.runner_id for info in b_router.runners()]

    assert result.content == BIG * 1000
    assert listed.connected and listed.name == "test"
    assert record.runner_id not in after  # it left A: B no longer lists it
    assert await count(postgres_dsn, "replica_payloads") == 0  # direct payloads read once


async def test_replica_decision_is_taken_once_across_replicas(
    tmp_path: Path, postgres_dsn: str
) -> None:
    decided = ProposalDecided(proposal_id="p1", decision="approved", branch="opik/fix/p1")
    touched = FilesChanged(changes=[FileChange(path="a.py", change="modified")])
    async with two_replicas(postgres_dsn) as (a, _a_router, b, b_router, record):
        on_b = b.event_queue()
        raw = await RawDaemon.connect(a, record)
        await raw.send("event", "ProposalDecided", decided.model_dump(mode="json"))
        async with asyncio.timeout(20):
            seen_on_b = await b_router.decision("p1")
        await raw.ws.close()

        # The daemon restarted before A's Ack reached it: it sends the decision again, to B.
        again = await RawDaemon.connect(b, record)
        await again.send("event", "ProposalDecided", decided.model_dump(mode="json"))
        await again.send("event", "FilesChanged", touched.model_dump(mode="json"))
        async with asyncio.timeout(20):
            _runner, first_kind, first = await on_b.get()
        await again.ws.close()

    assert seen_on_b == decided
    assert (first_kind, first) == ("FilesChanged", touched)  # B's subscribers never saw it again
    assert await count(postgres_dsn, "decisions") == 1


async def test_replica_bad_input_is_named_and_routing_goes_on(
    tmp_path: Path, postgres_dsn: str
) -> None:
    async with (
        two_replicas(postgres_dsn) as (a, a_router, _b, b_router, record),
        daemon_on(a, record),
    ):
        await wait_location(b_router, record.runner_id, a_router.replica_id)
        runner = b_router.runner(record.runner_id)
        with pytest.raises(BridgeError) as unknown_type:
            await runner.call("WriteFile", ReadFileArgs(path="x"))
        with pytest.raises(KeyError):
            b_router.runner("no-such-runner")

        async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as c:
            for channel in (BROADCAST_CHANNEL, replica_channel(a_router.replica_id)):
                await c.execute("SELECT pg_notify(%s, 'not json')", (channel,))
                await c.execute("SELECT pg_notify(%s, %s)", (channel, '{"k": "ref", "id": 9}'))
        stray = CommandMessage(
            id=uuid.uuid4().hex,
            reply_to=b_router.replica_id,
            runner_id="no-such-runner",
            type="ReadFile",
            payload={"path": "x"},
            timeout_s=5,
        )
        async with asyncio.timeout(20):
            missing = await b_router.send_command(a_router.replica_id, stray)
            still = await runner.read_file(ReadFileArgs(path="big"))
        assert a_router.listening and b_router.listening  # garbage did not stop either one
    assert not b_router.listening  # closed: a readiness check would fail now

    assert unknown_type.value.code == ErrorCode.UNKNOWN_TYPE
    assert missing.error is not None and missing.error.code == ErrorCode.RUNNER_NOT_FOUND
    assert still.total_lines == 1000


async def test_replica_that_lost_its_listen_connection_is_not_ready_until_it_listens_again(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """A's LISTEN backend is terminated while PostgreSQL refuses new connections: A says it is
    not ready, and B's sweep forgets A's runner. Once connections are allowed again, A listens
    again, re-announces its runner, and a command from B reaches the daemon on A."""
    async with (
        two_replicas(postgres_dsn) as (a, a_router, _b, b_router, record),
        daemon_on(a, record),
        httpx.AsyncClient(base_url=a.url.replace("ws://", "http://")) as http,
        await psycopg.AsyncConnection.connect(
            make_conninfo(postgres_dsn, dbname="postgres"), autocommit=True
        ) as admin,
        postgres_store(postgres_dsn) as store,
    ):
        await wait_location(b_router, record.runner_id, a_router.replica_id)
        store.replica_id = a_router.replica_id
        await store.create_session(
            SessionRecord(id="on-a", question="q", status="running", created_at=0.0)
        )
        before = await http.get("/readyz")
        database = sql.Identifier(conninfo_to_dict(postgres_dsn)["dbname"])
        await admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(database))
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (APPLICATION_PREFIX + a_router.replica_id,),
        )
        async with asyncio.timeout(20):
            await a_router.deaf.wait()
        during = await http.get("/readyz")
        await b_router.presence.sweep()
        await wait_location(b_router, record.runner_id, None)
        on_a = await store.get_session("on-a")  # A's process is alive (its pool): not lost

        await admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(database))
        async with asyncio.timeout(20):
            await a_router.rejoined.wait()
        after = await http.get("/readyz")
        await wait_location(b_router, record.runner_id, a_router.replica_id)
        async with asyncio.timeout(20):
            result = await b_router.runner(record.runner_id).read_file(ReadFileArgs(path="big"))

    assert (before.status_code, before.json()) == (200, {"status": "ready"})
    assert (during.status_code, during.json()) == (503, {"status": "unavailable"})
    assert on_a is not None and on_a.status == "running"
    assert (after.status_code, after.json()) == (200, {"status": "ready"})
    assert result.total_lines == 1000


async def test_replica_command_whose_result_came_while_deaf_is_sent_again_once_it_listens(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """B routes a ReadFile to the daemon on A, then loses its LISTEN connection; A's result is
    sent while B cannot hear it. Once B listens again the command goes again under its id, and
    the daemon answers from its cache: it ran the read once."""
    runs: list[str] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def held_read(args: ReadFileArgs) -> ReadFileResult:
        runs.append(args.path)
        started.set()
        await release.wait()
        return ReadFileResult(content="held", total_lines=1, truncated=False)

    admin_dsn = make_conninfo(postgres_dsn, dbname="postgres")
    database = sql.Identifier(conninfo_to_dict(postgres_dsn)["dbname"])
    async with (
        two_replicas(postgres_dsn) as (a, a_router, _b, b_router, record),
        await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as admin,
        await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as eavesdrop,
    ):
        link = make_link(a.url, record, {"ReadFile": held_read})
        serving = asyncio.create_task(link.run())
        try:
            await wait_location(b_router, record.runner_id, a_router.replica_id)
            reading = asyncio.create_task(
                b_router.runner(record.runner_id).read_file(ReadFileArgs(path="notes"))
            )
            await eavesdrop.execute(
                sql.SQL("LISTEN {}").format(sql.Identifier(replica_channel(b_router.replica_id)))
            )
            async with asyncio.timeout(20):
                await started.wait()
            await admin.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(database)
            )
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (APPLICATION_PREFIX + b_router.replica_id,),
            )
            async with asyncio.timeout(20):
                await b_router.deaf.wait()
                release.set()
                lost = await anext(eavesdrop.notifies())  # A's result, sent while B is deaf
            await admin.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(database)
            )
            async with asyncio.timeout(20):
                result = await reading
        finally:
            await link.stop()
            await serving

    assert '"outcome"' in lost.payload and not reading.cancelled()
    assert result.content == "held"
    assert runs == ["notes"]


async def test_replica_confirms_a_pairing_code_waiting_on_another_replica(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """Behind one URL the daemon's PairRequest and the operator's confirmation may reach
    different replicas: the code is confirmed where the daemon waits."""
    token = "t" * 40
    codes: asyncio.Queue[str] = asyncio.Queue()
    async with (
        replica(postgres_dsn, operator_token=token) as (a, a_services),
        replica(postgres_dsn, operator_token=token) as (b, b_services),
    ):
        router_of(b_services).pairing_relay.wait_s = 1.0
        link = make_link(
            a.url,
            None,
            {"ReadFile": big_read},
            pairing_store=PairingStore(tmp_path / "pairings.json"),
            on_pair_code=lambda code, expires: codes.put_nowait(code),
        )
        serving = asyncio.create_task(link.run())
        try:
            code = await asyncio.wait_for(codes.get(), 10)
            with pytest.raises(CliError, match="not_paired") as unknown:
                await confirm_pairing_remote(b.url, token, "AAAA-AAAA")
            confirmed = await confirm_pairing_remote(b.url, token, code)
            await asyncio.wait_for(link.connected.wait(), 10)
            await wait_location(
                router_of(b_services), confirmed.runner_id, router_of(a_services).replica_id
            )
            runner = router_of(b_services).runner(confirmed.runner_id)
            result = await runner.read_file(ReadFileArgs(path="big"))
        finally:
            await link.stop()
            await serving

    assert "no pairing request with that code" in str(unknown.value)
    assert confirmed.runner_id == "runner-remote"
    assert result.total_lines == 1000
