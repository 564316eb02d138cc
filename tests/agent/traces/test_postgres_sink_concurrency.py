"""Two PostgreSQL sink stores on one database (as two platform replicas have) writing the same
traces and spans at once lose no update: the merged records equal those the SQLite sink keeps for
the same writes applied one after another.

Each concurrent write carries fields no other write carries (the SDK's creates, PATCHes and
scores, plus extra fields, which the sink keeps), so every order gives one right answer, and a
merge that read a stale document would drop a field. Batches touch the same rows in opposite
orders (the case where PostgreSQL may abort one writer as a deadlock, to be retried).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Json

from opik_connect.agent.traces.sink_models import (
    ScoreWrite,
    SpanUpdate,
    SpanWrite,
    TraceFilter,
    TraceUpdate,
    TraceWrite,
)
from opik_connect.agent.traces.sink_store import SinkStore
from opik_connect.agent.traces.sink_store_postgres import PostgresSinkStore
from opik_connect.agent.traces.sink_store_sqlite import SqliteSinkStore

pytestmark = pytest.mark.timeout(120)

UPDATES_PER_REPLICA = 40
TRACES = ("t1", "t2", "t3")
START = "2026-01-01T00:00:00Z"


def _creates() -> list[tuple[str, object]]:
    """What exists before the race: traces t1, t2 and their spans (a span PATCH that names no
    trace must find its span, or it is dropped: that depends on order, so it is set up first)."""
    traces = [TraceWrite(id=t, name=t, start_time=START, input={"q": t}) for t in ("t1", "t2")]
    spans = [
        SpanWrite(id=f"{t}-s", trace_id=t, name="step", start_time=START) for t in ("t1", "t2")
    ]
    return [("traces", traces), ("spans", spans)]


def _racing(replica: str) -> list[tuple[str, object]]:
    """One replica's writes; every field name it writes is its own."""
    writes: list[tuple[str, object]] = []
    for n in range(UPDATES_PER_REPLICA):
        field = f"{replica}{n}"
        writes.append(("traces", [("t1", TraceUpdate.model_validate({field: n}))]))
        writes.append(("spans", [("t1-s", SpanUpdate.model_validate({field: n}))]))
        pair = [
            ("t1", TraceUpdate.model_validate({f"{field}_pair": n})),
            ("t2", TraceUpdate.model_validate({f"{field}_pair": n})),
        ]
        writes.append(("traces", pair if replica == "a" else pair[::-1]))
        writes.append(("scores", [ScoreWrite(id="t1", name=f"score_{field}", value=n / 100)]))
    # Both create t3 at once: one insert wins, the other merges into it.
    create = {"id": "t3", "name": "t3", "start_time": START, f"by_{replica}": True}
    writes.append(("traces", [TraceWrite.model_validate(create)]))
    writes.append(("spans", [("t2-s", SpanUpdate.model_validate({f"by_{replica}": True}))]))
    return writes


async def _apply(store: SinkStore, kind: str, items: object) -> None:
    if kind == "traces":
        await store.write_traces(items)  # type: ignore[arg-type]
    elif kind == "spans":
        await store.write_spans(items)  # type: ignore[arg-type]
    else:
        await store.write_scores("trace", items)  # type: ignore[arg-type]


async def _records(store: SinkStore) -> dict[str, object]:
    records = {}
    for trace_id in TRACES:
        record = await store.get(trace_id)
        assert record is not None, trace_id
        records[trace_id] = record.model_dump()
    found, total = await store.search(TraceFilter())
    records["search"] = ([item.model_dump() for item in found], total)
    return records


async def test_postgres_sinks_of_two_replicas_racing_lose_no_update(
    postgres_dsn: str, tmp_path: Path
) -> None:
    a = await PostgresSinkStore.open(postgres_dsn)
    b = await PostgresSinkStore.open(postgres_dsn)
    sqlite = await SqliteSinkStore.open(tmp_path / "traces.sqlite3")
    try:
        for kind, items in _creates():
            await _apply(a, kind, items)
            await _apply(sqlite, kind, items)
        await asyncio.gather(
            *(_apply(a, kind, items) for kind, items in _racing("a")),
            *(_apply(b, kind, items) for kind, items in _racing("b")),
        )
        for kind, items in [*_racing("a"), *_racing("b")]:
            await _apply(sqlite, kind, items)

        merged = await _records(b)
        assert merged == await _records(a)
        assert merged == await _records(sqlite)
        t1 = (await a.get("t1")).trace.model_dump()  # type: ignore[union-attr]
        fields = {f"{r}{n}" for r in "ab" for n in range(UPDATES_PER_REPLICA)}
        assert fields <= set(t1), "an update was lost"
        assert len(t1["feedback_scores"]) == 2 * UPDATES_PER_REPLICA
    finally:
        for store in (a, b, sqlite):
            await store.close()


async def _until_waiting_on_a_lock(dsn: str, application: str) -> None:
    """Until PostgreSQL shows the store's connection blocked on a lock. No event says so; its
    pg_stat_activity row is the source of truth, polled (bounded by the test's timeout)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while True:
            cursor = await conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = %s"
                " AND wait_event_type = 'Lock'",
                (application,),
            )
            if await cursor.fetchone() is not None:
                return
            await asyncio.sleep(0.01)


async def test_postgres_sink_losing_an_insert_race_merges_into_the_winner(
    postgres_dsn: str,
) -> None:
    """Another replica inserts the trace between this batch's read and its insert: the batch
    then locks that row and merges into it, keeping both writers' fields and tags."""
    application = "sink-under-test"
    store = await PostgresSinkStore.open(f"{postgres_dsn}?application_name={application}")
    try:
        await store.write_traces([TraceWrite(id="t0", name="t0", start_time=START)])  # migrated
        async with await psycopg.AsyncConnection.connect(postgres_dsn) as other:
            await other.execute(
                "INSERT INTO traces (id, name, start_time, text, data) VALUES (%s, %s, %s, '', %s)",
                ("t9", "first", START, Json({"id": "t9", "name": "first", "by_other": True})),
            )  # not committed yet: the store does not see it, and its insert will wait
            write = asyncio.ensure_future(
                store.write_traces(
                    [TraceWrite(id="t9", name="second", start_time=START, tags=["x"])]
                )
            )
            await _until_waiting_on_a_lock(postgres_dsn, application)
            await other.commit()
        await write
        record = await store.get("t9")
        assert record is not None
        assert (record.trace.name, record.trace.tags) == ("second", ["x"])
        assert record.trace.model_dump()["by_other"] is True
        found, _ = await store.search(TraceFilter(tag="x"))
        assert [item.id for item in found] == ["t9"]
    finally:
        await store.close()
