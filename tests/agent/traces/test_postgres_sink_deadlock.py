"""A sink batch that PostgreSQL aborts as a deadlock is retried whole and applied once.

Another session holds one row of the batch and then asks for one the batch holds; it waits 10 s
before looking for deadlocks, the sink's session the server's 1 s, so the sink is the one
aborted. Nothing of the aborted attempt stays (its transaction rolled back); the retry applies it.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from opik_connect.agent.traces import sink_store_postgres
from opik_connect.agent.traces.sink_models import TraceUpdate, TraceWrite
from opik_connect.agent.traces.sink_store_postgres import PostgresSinkStore

pytestmark = pytest.mark.timeout(60)

START = "2026-01-01T00:00:00Z"
WAITING_ON_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> %s"
)


async def blocked_on_a_lock(conn: psycopg.AsyncConnection, own_pid: int) -> None:
    """Until some other session (the sink's) waits for a row lock: PostgreSQL has no event."""
    for _ in range(2000):
        row = await (await conn.execute(WAITING_ON_A_LOCK, (own_pid,))).fetchone()
        if row and row[0]:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the sink's batch never waited for the held row")


async def test_a_batch_aborted_as_a_deadlock_is_retried_and_applied_once(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await PostgresSinkStore.open(postgres_dsn)
    other = await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True)
    attempts = 0
    merge = sink_store_postgres._merge_batch

    async def counted(*args, **kwargs):
        nonlocal attempts
        attempts += 1
        return await merge(*args, **kwargs)

    try:
        await store.write_traces([TraceWrite(id=t, name=t, start_time=START) for t in ("t1", "t2")])
        monkeypatch.setattr(sink_store_postgres, "_merge_batch", counted)
        await other.execute("SET deadlock_timeout = '10s'")
        own_pid = other.info.backend_pid
        async with other.transaction():
            await other.execute("SELECT id FROM traces WHERE id = 't2' FOR UPDATE")
            batch = [
                ("t1", TraceUpdate.model_validate({"from_batch": 1})),
                ("t2", TraceUpdate.model_validate({"from_batch": 2})),
            ]
            write = asyncio.create_task(store.write_traces(batch))
            await blocked_on_a_lock(other, own_pid)  # the batch holds t1 and waits for t2
            await other.execute("SELECT id FROM traces WHERE id = 't1' FOR UPDATE")
            assert not write.done()  # aborted, and waiting for our rows again
        await asyncio.wait_for(write, 30)
        assert attempts == 2
        for trace_id, value in (("t1", 1), ("t2", 2)):
            stored = await store.get(trace_id)
            assert stored is not None
            assert (stored.trace.model_extra or {}).get("from_batch") == value
    finally:
        await other.close()
        await store.close()
