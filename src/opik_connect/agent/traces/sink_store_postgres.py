"""The trace sink on PostgreSQL: one store for a team's platform replicas (pg_migrations 0004).

A trace logged through replica A is read through replica B. The SDK sends a trace or span when
it starts, again when it ends, then PATCHes; replicas may take these writes at the same time, so
each merge locks its row (`SELECT ... FOR UPDATE`) and merges in Python with the very function
the SQLite sink uses (sink_store_logic.merged): a write waits for the one before it and loses
none of its fields. A row not there yet is inserted with `ON CONFLICT DO NOTHING`; a replica
that loses that race locks the winner's row and merges into it. Documents are `json` (not
`jsonb`), so they keep their key order, and reads give back exactly what SQLite would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Json
from psycopg_pool import AsyncConnectionPool

from opik_connect.agent.platform.store_postgres import redact_url, upgrade_schema
from opik_connect.agent.platform.store_schema import StoreError
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
CONNECT_TIMEOUT_S = 10
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
        await asyncio.to_thread(upgrade_schema, url)
        pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": True, "row_factory": dict_row},
            timeout=CONNECT_TIMEOUT_S,
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            await pool.close()
            raise StoreError(f"cannot connect to {redact_url(url)}: {exc}") from exc
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

        async def work(conn: Conn) -> None:
            await _lock_in_order(conn, "traces", [trace_id for trace_id, _ in items])
            for trace_id, fields in items:
                await _upsert_trace(conn, trace_id, fields)

        await self._write(work)

    async def write_spans(self, spans: Sequence[SpanWrite | tuple[str, SpanUpdate]]) -> None:
        items = keyed_fields(spans)

        async def work(conn: Conn) -> None:
            await _lock_in_order(conn, "spans", [span_id for span_id, _ in items])
            for span_id, fields in items:
                await _upsert_span(conn, span_id, fields)

        await self._write(work)

    async def write_scores(self, entity: str, scores: Sequence[ScoreWrite]) -> None:
        """Feedback scores on traces or spans (`entity`); a score replaces one of the same name."""

        in_order = sorted(scores, key=lambda score: (score.id, score.name))  # stable: last wins

        async def work(conn: Conn) -> None:
            for score in in_order:
                await conn.execute(
                    "INSERT INTO scores (entity, entity_id, name, value, data) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (entity, entity_id, name) "
                    "DO UPDATE SET value = excluded.value, data = excluded.data",
                    (entity, score.id, score.name, score.value, _json(score_document(score))),
                )

        await self._write(work, trim=False)


def _json(value: Any) -> Json:
    return Json(value, dumps=dumps)


async def _lock_in_order(conn: Conn, table: str, ids: list[str]) -> None:
    """Lock a batch's stored rows by id order first, so two batches holding the same rows in
    opposite orders queue one behind the other instead of deadlocking. The batch then applies
    in its own order (which sets insertion order, as in SQLite)."""
    if len(set(ids)) > 1:
        await conn.execute(
            f"SELECT 1 FROM {table} WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (sorted(set(ids)),)
        )


async def _locked(conn: Conn, table: str, entity_id: str) -> dict[str, Any] | None:
    """The stored document, its row locked until the transaction ends; None if there is none."""
    cursor = await conn.execute(f"SELECT data FROM {table} WHERE id = %s FOR UPDATE", (entity_id,))
    row = await cursor.fetchone()
    return row["data"] if row else None


async def _inserted(conn: Conn, sql: str, params: Sequence[Any]) -> bool:
    """Insert a new row; False when another writer's row with that id came first."""
    cursor = await conn.execute(sql + " ON CONFLICT (id) DO NOTHING RETURNING seq", params)
    return await cursor.fetchone() is not None


async def _upsert_trace(conn: Conn, trace_id: str, fields: dict[str, Any]) -> None:
    while True:
        stored = await _locked(conn, "traces", trace_id)
        data = merged(stored, trace_id, fields)
        if stored is not None:
            await conn.execute(
                "UPDATE traces SET project_name = %s, name = %s, start_time = %s, "
                "has_error = %s, text = %s, data = %s WHERE id = %s",
                (*trace_columns(data), _json(data), trace_id),
            )
            break
        insert = (
            "INSERT INTO traces (id, project_name, name, start_time, has_error, text, data) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)"
        )
        if await _inserted(conn, insert, (trace_id, *trace_columns(data), _json(data))):
            break
    if "tags" in fields:
        await conn.execute("DELETE FROM trace_tags WHERE trace_id = %s", (trace_id,))
        async with conn.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO trace_tags (trace_id, tag) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [(trace_id, tag) for tag in data.get("tags") or []],
            )


async def _upsert_span(conn: Conn, span_id: str, fields: dict[str, Any]) -> None:
    while True:
        stored = await _locked(conn, "spans", span_id)
        data = merged(stored, span_id, fields)
        if not data.get("trace_id"):
            return
        if stored is not None:
            await conn.execute(
                "UPDATE spans SET trace_id = %s, start_time = %s, has_error = %s, data = %s "
                "WHERE id = %s",
                (*span_columns(data), _json(data), span_id),
            )
            return
        insert = (
            "INSERT INTO spans (id, trace_id, start_time, has_error, data) "
            "VALUES (%s, %s, %s, %s, %s)"
        )
        if await _inserted(conn, insert, (span_id, *span_columns(data), _json(data))):
            return
