"""The trace sink on one SQLite file: the embedded default, one file per platform process.

The file (mode 0600) lives beside the platform's store. Each batch is one transaction, merged
in Python under SQLite's single writer (BEGIN IMMEDIATE), so a merge never loses an update.
Past `max_traces`, the oldest traces go, with their spans and scores. sqlite3 blocks, so calls
run on a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opik_connect.agent.sqlite_off_loop import SqliteOffLoop
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
from opik_connect.config import user_state_dir

SINK_FILENAME = "traces.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS traces (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    project_name TEXT,
    name TEXT,
    start_time TEXT,
    has_error INTEGER NOT NULL DEFAULT 0,
    text TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_by_start ON traces (start_time);
CREATE INDEX IF NOT EXISTS traces_by_name ON traces (name, start_time);
CREATE TABLE IF NOT EXISTS trace_tags (
    trace_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (trace_id, tag)
);
CREATE INDEX IF NOT EXISTS trace_tags_by_tag ON trace_tags (tag);
CREATE TABLE IF NOT EXISTS spans (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    trace_id TEXT NOT NULL,
    start_time TEXT,
    has_error INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spans_by_trace ON spans (trace_id, has_error);
CREATE TABLE IF NOT EXISTS scores (
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (entity, entity_id, name)
);
CREATE INDEX IF NOT EXISTS scores_by_value ON scores (entity, name, value);
"""


def default_sink_path() -> Path:
    return user_state_dir() / SINK_FILENAME


class SqliteSinkStore(SqliteOffLoop, SqlSinkReads):
    """Async facade over one SQLite connection. Open with `await SqliteSinkStore.open(path)`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, max_traces: int) -> None:
        super().__init__(path, conn)
        self.max_traces = max_traces

    @classmethod
    async def open(
        cls, path: Path | None = None, *, max_traces: int = DEFAULT_MAX_TRACES
    ) -> SqliteSinkStore:
        path = path or default_sink_path()
        conn = await asyncio.to_thread(_connect, path)
        return cls(path, conn, max_traces)

    @property
    def location(self) -> str:
        return str(self.path)

    def _transaction(self, work: Callable[[sqlite3.Connection], None]) -> None:
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            work(self._conn)

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        conn = self._conn
        return await self._run(lambda: [dict(row) for row in conn.execute(sql, params)])

    # --- writes -----------------------------------------------------------------------------------

    async def write_traces(self, traces: Sequence[TraceWrite | tuple[str, TraceUpdate]]) -> None:
        """Upsert traces (a TraceWrite, or an id and the fields of a PATCH); one transaction."""

        items = keyed_fields(traces)

        def work(conn: sqlite3.Connection) -> None:
            for trace_id, fields in items:
                _upsert_trace(conn, trace_id, fields)
            _enforce_retention(conn, self.max_traces, self.max_traces * SPANS_PER_TRACE)

        await self._run(self._transaction, work)

    async def write_spans(self, spans: Sequence[SpanWrite | tuple[str, SpanUpdate]]) -> None:
        items = keyed_fields(spans)

        def work(conn: sqlite3.Connection) -> None:
            for span_id, fields in items:
                _upsert_span(conn, span_id, fields)
            _enforce_retention(conn, self.max_traces, self.max_traces * SPANS_PER_TRACE)

        await self._run(self._transaction, work)

    async def write_scores(self, entity: str, scores: Sequence[ScoreWrite]) -> None:
        """Feedback scores on traces or spans (`entity`); a score replaces one of the same name."""

        def work(conn: sqlite3.Connection) -> None:
            for score in scores:
                conn.execute(
                    "INSERT INTO scores (entity, entity_id, name, value, data) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (entity, entity_id, name) "
                    "DO UPDATE SET value = excluded.value, data = excluded.data",
                    (entity, score.id, score.name, score.value, dumps(score_document(score))),
                )

        await self._run(self._transaction, work)


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(_SCHEMA)
    return conn


def _stored(conn: sqlite3.Connection, table: str, entity_id: str) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT data FROM {table} WHERE id = ?", (entity_id,)).fetchone()
    return json.loads(row["data"]) if row else None


def _upsert_trace(conn: sqlite3.Connection, trace_id: str, fields: dict[str, Any]) -> None:
    data = merged(_stored(conn, "traces", trace_id), trace_id, fields)
    conn.execute(
        "INSERT INTO traces (id, project_name, name, start_time, has_error, text, data) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
        "project_name = excluded.project_name, name = excluded.name, "
        "start_time = excluded.start_time, has_error = excluded.has_error, "
        "text = excluded.text, data = excluded.data",
        (trace_id, *trace_columns(data), dumps(data)),
    )
    if "tags" in fields:
        conn.execute("DELETE FROM trace_tags WHERE trace_id = ?", (trace_id,))
        conn.executemany(
            "INSERT OR IGNORE INTO trace_tags (trace_id, tag) VALUES (?, ?)",
            [(trace_id, tag) for tag in data.get("tags") or []],
        )


def _upsert_span(conn: sqlite3.Connection, span_id: str, fields: dict[str, Any]) -> None:
    data = merged(_stored(conn, "spans", span_id), span_id, fields)
    if not data.get("trace_id"):
        return
    conn.execute(
        "INSERT INTO spans (id, trace_id, start_time, has_error, data) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET trace_id = excluded.trace_id, "
        "start_time = excluded.start_time, has_error = excluded.has_error, data = excluded.data",
        (span_id, *span_columns(data), dumps(data)),
    )


def _enforce_retention(conn: sqlite3.Connection, max_traces: int, max_spans: int) -> None:
    old = [
        row["id"]
        for row in conn.execute(
            "SELECT id FROM traces ORDER BY seq DESC LIMIT -1 OFFSET ?", (max_traces,)
        )
    ]
    for trace_id in old:
        span_ids = [
            r["id"] for r in conn.execute("SELECT id FROM spans WHERE trace_id = ?", (trace_id,))
        ]
        conn.executemany(
            "DELETE FROM scores WHERE entity = 'span' AND entity_id = ?",
            [(span_id,) for span_id in span_ids],
        )
        conn.execute("DELETE FROM spans WHERE trace_id = ?", (trace_id,))
        conn.execute("DELETE FROM trace_tags WHERE trace_id = ?", (trace_id,))
        conn.execute("DELETE FROM scores WHERE entity = 'trace' AND entity_id = ?", (trace_id,))
        conn.execute("DELETE FROM traces WHERE id = ?", (trace_id,))
    # A cap on all spans also bounds spans whose trace never came. It keeps the spans among the
    # last `max_spans` rowids given out (O(1) via max(seq); deleted rowids make it keep fewer).
    conn.execute("DELETE FROM spans WHERE seq <= (SELECT max(seq) FROM spans) - ?", (max_spans,))
