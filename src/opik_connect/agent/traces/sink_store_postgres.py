"""The trace sink on PostgreSQL: one store for a team's platform replicas (pg_migrations 0004).

A trace logged through replica A is read through replica B. The SDK sends a trace or span when
it starts, again when it ends, then PATCHes; replicas may take these writes at the same time, so
a batch locks its stored rows (`SELECT ... FOR UPDATE`, in id order, so two batches never wait
on each other in a cycle) and merges in Python with the very function the SQLite sink uses
(sink_store_logic.merged): a write waits for the one before it and loses none of its fields.
Rows not there yet are inserted with `ON CONFLICT DO NOTHING`; a row another replica inserted
meanwhile is locked and merged into instead. Statements of a batch go pipelined (executemany).
Documents are `json` (not `jsonb`), so they keep their key order, and reads give back exactly
what SQLite would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Json
from psycopg_pool import AsyncConnectionPool

from opik_connect.agent.platform.store_postgres import open_migrated_pool, redact_url
from opik_connect.agent.traces.sink_models import (
    ScoreWrite,
    SpanUpdate,
    SpanWrite,
    TraceUpdate,
    TraceWrite,
)
from opik_connect.agent.traces.sink_store_logic import (
    DEFAULT_MAX_TRACES,
    SPANS_PER_TRACE,
    SqlSinkReads,
    dumps,
    keyed_fields,
    merged,
    score_document,
    span_columns,
    trace_columns,
)

POOL_MAX_SIZE = 5
WRITE_ATTEMPTS = 5
"""Two replicas' batches may lock the same rows in opposite orders; PostgreSQL then aborts one
(a deadlock), which is retried whole: its transaction rolled back, so nothing is applied twice."""

Conn = psycopg.AsyncConnection[dict[str, Any]]

_RETENTION = (
    "WITH gone AS (DELETE FROM traces WHERE id IN"
    " (SELECT id FROM traces ORDER BY seq DESC OFFSET %s) RETURNING id),"
    " gone_spans AS (DELETE FROM spans WHERE trace_id IN (SELECT id FROM gone) RETURNING id),"
    " span_scores AS (DELETE FROM scores WHERE entity = 'span'"
    " AND entity_id IN (SELECT id FROM gone_spans)),"
    " tags AS (DELETE FROM trace_tags WHERE trace_id IN (SELECT id FROM gone))"
    " DELETE FROM scores WHERE entity = 'trace' AND entity_id IN (SELECT id FROM gone)"
)
_SPAN_CAP = "DELETE FROM spans WHERE seq <= (SELECT max(seq) FROM spans) - %s"


class PostgresSinkStore(SqlSinkReads):
    """Open with `await PostgresSinkStore.open("postgresql://...")`."""

    name_like = "ILIKE"
    """PostgreSQL's LIKE minds case; SQLite's does not."""

    def __init__(self, url: str, pool: AsyncConnectionPool, max_traces: int) -> None:
        self.url = url
        self._pool = pool
        self.max_traces = max_traces

    @classmethod
    async def open(
        cls, url: str, *, max_traces: int = DEFAULT_MAX_TRACES, max_size: int = POOL_MAX_SIZE
    ) -> PostgresSinkStore:
        """Migrate to the newest schema, then open the pool; StoreError if either fails."""
        pool = await open_migrated_pool(url, max_size, configure=_no_jit)
        return cls(url, pool, max_traces)

    @property
    def location(self) -> str:
        return redact_url(self.url)

    async def close(self) -> None:
        await self._pool.close()

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(sql.replace("?", "%s"), params)
            return await cursor.fetchall()

    async def _write(self, work: Callable[[Conn], Awaitable[None]], *, trim: bool = True) -> None:
        """Run `work` in one transaction, trimming to the caps after traces and spans, as the
        SQLite sink does; again after a deadlock."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                async with self._pool.connection() as conn, conn.transaction():
                    await work(conn)
                    if trim:
                        await conn.execute(_RETENTION, (self.max_traces,))
                        await conn.execute(_SPAN_CAP, (self.max_traces * SPANS_PER_TRACE,))
                return
            except psycopg.errors.DeadlockDetected:
                if attempt == WRITE_ATTEMPTS:
                    raise

    # --- writes -----------------------------------------------------------------------------------

    async def write_traces(self, traces: Sequence[TraceWrite | tuple[str, TraceUpdate]]) -> None:
        """Upsert traces (a TraceWrite, or an id and the fields of a PATCH); one transaction."""
        items = keyed_fields(traces)
        tagged = sorted({trace_id for trace_id, fields in items if "tags" in fields})

        async def work(conn: Conn) -> None:
            written = await _merge_batch(conn, _TRACES, items)
            if not tagged:
                return
            await conn.execute("DELETE FROM trace_tags WHERE trace_id = ANY(%s)", (tagged,))
            tags = [(t, tag) for t in tagged for tag in dict.fromkeys(written[t].get("tags") or [])]
            if not tags:
                return
            async with conn.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO trace_tags (trace_id, tag) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    tags,
                )

        await self._write(work)

    async def write_spans(self, spans: Sequence[SpanWrite | tuple[str, SpanUpdate]]) -> None:
        items = keyed_fields(spans)

        async def work(conn: Conn) -> None:
            await _merge_batch(conn, _SPANS, items)

        await self._write(work)

    async def write_scores(self, entity: str, scores: Sequence[ScoreWrite]) -> None:
        """Feedback scores on traces or spans (`entity`); a score replaces one of the same name."""
        # In key order, so batches never lock in a cycle; a stable sort keeps the last copy last.
        in_order = sorted(scores, key=lambda score: (score.id, score.name))
        rows = [
            (entity, score.id, score.name, score.value, _json(score_document(score)))
            for score in in_order
        ]

        async def work(conn: Conn) -> None:
            async with conn.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO scores (entity, entity_id, name, value, data) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (entity, entity_id, name) "
                    "DO UPDATE SET value = excluded.value, data = excluded.data",
                    rows,
                )

        await self._write(work, trim=False)


async def _no_jit(conn: Conn) -> None:
    """JIT off for the sink's connections: its queries read a few rows by index, yet after a
    bulk load (before autovacuum analyses it) the planner's estimates soar and compiling the
    plan cost a listing 10-40 ms instead of about 1."""
    await conn.execute("SET jit = off")


def _json(value: Any) -> Json:
    return Json(value, dumps=dumps)


@dataclass(frozen=True)
class _Table:
    """How one kind of document is stored: its table, derived columns and when it is kept."""

    name: str
    columns: tuple[str, ...]
    derive: Callable[[dict[str, Any]], tuple[Any, ...]]
    keeps: Callable[[dict[str, Any]], bool]

    def insert(self) -> str:
        names = ", ".join(("id", *self.columns, "data"))
        marks = ", ".join("%s" for _ in range(len(self.columns) + 2))
        return (
            f"INSERT INTO {self.name} ({names}) VALUES ({marks}) "
            "ON CONFLICT (id) DO NOTHING RETURNING id"
        )

    def update(self) -> str:
        assignments = ", ".join(f"{column} = %s" for column in (*self.columns, "data"))
        return f"UPDATE {self.name} SET {assignments} WHERE id = %s"

    def row(self, entity_id: str, data: dict[str, Any]) -> tuple[Any, ...]:
        return (entity_id, *self.derive(data), _json(data))


_TRACES = _Table(
    "traces",
    ("project_name", "name", "start_time", "has_error", "text"),
    trace_columns,
    lambda data: True,
)
_SPANS = _Table(
    "spans",
    ("trace_id", "start_time", "has_error"),
    span_columns,
    lambda data: bool(data.get("trace_id")),  # a span update naming no trace needs its span
)


async def _merge_batch(
    conn: Conn, table: _Table, items: list[tuple[str, dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    """Apply a batch's writes in order; the documents written, by id."""
    cursor = await conn.execute(
        f"SELECT id, data FROM {table.name} WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
        (sorted({entity_id for entity_id, _ in items}),),
    )
    stored = {row["id"]: row["data"] for row in await cursor.fetchall()}
    written: dict[str, dict[str, Any]] = {}  # first kept write first: the insertion order
    for entity_id, fields in items:
        data = merged(written.get(entity_id, stored.get(entity_id)), entity_id, fields)
        if table.keeps(data):
            written[entity_id] = data
    new = [entity_id for entity_id in written if entity_id not in stored]
    inserted: set[str] = set()
    async with conn.cursor() as cursor:
        if new:
            rows = [table.row(entity_id, written[entity_id]) for entity_id in new]
            await cursor.executemany(table.insert(), rows, returning=True)
            while True:
                inserted.update(row["id"] for row in await cursor.fetchall())
                if not cursor.nextset():
                    break
        updates = [(*table.row(i, written[i])[1:], i) for i in written if i in stored]
        if updates:
            await cursor.executemany(table.update(), updates)
    for entity_id in new:
        if entity_id not in inserted:  # another replica inserted it since: merge into its row
            data = None
            for fields in (f for i, f in items if i == entity_id):
                data = await _merge_one(conn, table, entity_id, fields) or data
            written[entity_id] = data or written[entity_id]
    return written


async def _merge_one(
    conn: Conn, table: _Table, entity_id: str, fields: dict[str, Any]
) -> dict[str, Any] | None:
    """One write, row by row: the document written, or None when it is not kept."""
    while True:
        cursor = await conn.execute(
            f"SELECT data FROM {table.name} WHERE id = %s FOR UPDATE", (entity_id,)
        )
        row = await cursor.fetchone()
        data = merged(row["data"] if row else None, entity_id, fields)
        if not table.keeps(data):
            return None
        if row is not None:
            await conn.execute(table.update(), (*table.row(entity_id, data)[1:], entity_id))
            return data
        cursor = await conn.execute(table.insert(), table.row(entity_id, data))
        if await cursor.fetchone() is not None:
            return data
