"""The trace sink's memory: traces, spans and feedback scores the Opik SDK logged, in SQLite.

One file (mode 0600) beside the platform's store. Writes are upserts by id, as on Opik's server:
the SDK sends a trace when it starts and again when it ends, and a later write only fills in or
replaces the fields it carries. Each batch is one transaction. Past `max_traces`, the oldest
traces go, with their spans and scores. sqlite3 blocks, so calls run on a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from opik_connect.agent.sqlite_off_loop import SqliteOffLoop
from opik_connect.agent.traces.sink_models import (
    ScoreWrite,
    SpanUpdate,
    SpanWrite,
    TraceFilter,
    TraceSummary,
    TraceUpdate,
    TraceWrite,
    iso,
)
from opik_connect.agent.traces.store import TraceWithSpans, parse_trace_document
from opik_connect.config import user_state_dir

SINK_FILENAME = "traces.sqlite3"
DEFAULT_MAX_TRACES = 10_000
SPANS_PER_TRACE = 100
"""The span cap is max_traces times this; past it the oldest spans go, orphans included."""
SUMMARY_CHARS = 120


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


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def _fields(model: BaseModel) -> dict[str, Any]:
    """The fields a write carried (None means 'not sent', as the SDK drops Nones)."""
    data = model.model_dump(mode="json", exclude_none=True)
    for key in ("start_time", "end_time", "last_updated_at"):
        value = getattr(model, key, None)
        if value is not None:
            data[key] = iso(value)
    return data


class SinkStore(SqliteOffLoop):
    """Async facade over one SQLite connection. Open with `await SinkStore.open(path)`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, max_traces: int) -> None:
        super().__init__(path, conn)
        self.max_traces = max_traces

    @classmethod
    async def open(cls, path: Path | None = None, *, max_traces: int = DEFAULT_MAX_TRACES):
        path = path or default_sink_path()
        conn = await asyncio.to_thread(_connect, path)
        return cls(path, conn, max_traces)

    def _transaction(self, work: Callable[[sqlite3.Connection], None]) -> None:
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            work(self._conn)

    # --- writes -----------------------------------------------------------------------------------

    async def write_traces(self, traces: Sequence[TraceWrite | tuple[str, TraceUpdate]]) -> None:
        """Upsert traces (a TraceWrite, or an id and the fields of a PATCH); one transaction."""

        def work(conn: sqlite3.Connection) -> None:
            for item in traces:
                trace_id, update = item if isinstance(item, tuple) else (item.id, item)
                _upsert_trace(conn, trace_id, _fields(update))
            _enforce_retention(conn, self.max_traces, self.max_traces * SPANS_PER_TRACE)

        await self._run(self._transaction, work)

    async def write_spans(self, spans: Sequence[SpanWrite | tuple[str, SpanUpdate]]) -> None:
        def work(conn: sqlite3.Connection) -> None:
            for item in spans:
                span_id, update = item if isinstance(item, tuple) else (item.id, item)
                _upsert_span(conn, span_id, _fields(update))
            _enforce_retention(conn, self.max_traces, self.max_traces * SPANS_PER_TRACE)

        await self._run(self._transaction, work)

    async def write_scores(self, entity: str, scores: Sequence[ScoreWrite]) -> None:
        """Feedback scores on traces or spans (`entity`); a score replaces one of the same name."""

        def work(conn: sqlite3.Connection) -> None:
            for score in scores:
                data = score.model_dump(mode="json", exclude_none=True, exclude={"id"})
                conn.execute(
                    "INSERT INTO scores (entity, entity_id, name, value, data) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (entity, entity_id, name) "
                    "DO UPDATE SET value = excluded.value, data = excluded.data",
                    (entity, score.id, score.name, score.value, _dumps(data)),
                )

        await self._run(self._transaction, work)

    # --- reads ------------------------------------------------------------------------------------

    async def get(self, trace_id: str) -> TraceWithSpans | None:
        """The trace with its spans and feedback scores, in TracePublic/SpanPublic shape."""
        return await self._run(_read_trace, self._conn, trace_id)

    async def search(self, query: TraceFilter) -> tuple[list[TraceSummary], int]:
        """Matching traces, newest first, and how many match in all."""
        return await self._run(_search, self._conn, query)


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


def _merged(conn: sqlite3.Connection, table: str, entity_id: str, fields: dict[str, Any]):
    row = conn.execute(f"SELECT data FROM {table} WHERE id = ?", (entity_id,)).fetchone()
    data = json.loads(row["data"]) if row else {}
    data.update(fields)
    data["id"] = entity_id
    return data


def _searchable(data: dict[str, Any]) -> str:
    return _dumps([data.get("input"), data.get("output")]).lower()


def _upsert_trace(conn: sqlite3.Connection, trace_id: str, fields: dict[str, Any]) -> None:
    data = _merged(conn, "traces", trace_id, fields)
    conn.execute(
        "INSERT INTO traces (id, project_name, name, start_time, has_error, text, data) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
        "project_name = excluded.project_name, name = excluded.name, "
        "start_time = excluded.start_time, has_error = excluded.has_error, "
        "text = excluded.text, data = excluded.data",
        (
            trace_id,
            data.get("project_name"),
            data.get("name"),
            data.get("start_time"),
            int(bool(data.get("error_info"))),
            _searchable(data),
            _dumps(data),
        ),
    )
    if "tags" in fields:
        conn.execute("DELETE FROM trace_tags WHERE trace_id = ?", (trace_id,))
        conn.executemany(
            "INSERT OR IGNORE INTO trace_tags (trace_id, tag) VALUES (?, ?)",
            [(trace_id, tag) for tag in data.get("tags") or []],
        )


def _upsert_span(conn: sqlite3.Connection, span_id: str, fields: dict[str, Any]) -> None:
    data = _merged(conn, "spans", span_id, fields)
    if not data.get("trace_id"):
        return
    conn.execute(
        "INSERT INTO spans (id, trace_id, start_time, has_error, data) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET trace_id = excluded.trace_id, "
        "start_time = excluded.start_time, has_error = excluded.has_error, data = excluded.data",
        (
            span_id,
            data["trace_id"],
            data.get("start_time"),
            int(bool(data.get("error_info"))),
            _dumps(data),
        ),
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


def _scores(conn: sqlite3.Connection, entity: str, entity_ids: list[str]) -> dict[str, list]:
    found: dict[str, list] = {}
    for start in range(0, len(entity_ids), 500):
        chunk = entity_ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        rows = conn.execute(
            f"SELECT entity_id, data FROM scores WHERE entity = ? AND entity_id IN ({marks}) "
            "ORDER BY name",
            (entity, *chunk),
        )
        for row in rows:
            found.setdefault(row["entity_id"], []).append(json.loads(row["data"]))
    return found


def _read_trace(conn: sqlite3.Connection, trace_id: str) -> TraceWithSpans | None:
    row = conn.execute("SELECT data FROM traces WHERE id = ?", (trace_id,)).fetchone()
    if row is None:
        return None
    trace = json.loads(row["data"])
    spans = [
        json.loads(r["data"])
        for r in conn.execute(
            "SELECT data FROM spans WHERE trace_id = ? ORDER BY start_time, seq", (trace_id,)
        )
    ]
    trace_scores = _scores(conn, "trace", [trace_id]).get(trace_id)
    if trace_scores:
        trace["feedback_scores"] = trace_scores
    span_scores = _scores(conn, "span", [span["id"] for span in spans])
    for span in spans:
        if span["id"] in span_scores:
            span["feedback_scores"] = span_scores[span["id"]]
    return parse_trace_document({"trace": trace, "spans": spans}, "trace sink")


_ERRORED = (
    "(t.has_error = 1 OR EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.id "
    "AND s.has_error = 1))"
)


def _where(query: TraceFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.name:
        clauses.append("t.name LIKE ? ESCAPE '\\'")
        params.append(f"%{_like(query.name)}%")
    if query.tag:
        clauses.append("EXISTS (SELECT 1 FROM trace_tags g WHERE g.trace_id = t.id AND g.tag = ?)")
        params.append(query.tag)
    if query.has_error is not None:
        clauses.append(_ERRORED if query.has_error else f"NOT {_ERRORED}")
    if query.score_below is not None:
        named = " AND f.name = ?" if query.score_name else ""
        clauses.append(
            "EXISTS (SELECT 1 FROM scores f WHERE f.entity = 'trace' AND f.entity_id = t.id "
            f"AND f.value < ?{named})"
        )
        params.append(query.score_below)
        if query.score_name:
            params.append(query.score_name)
    if query.since is not None:
        clauses.append("t.start_time >= ?")
        params.append(iso(query.since))
    if query.text:
        clauses.append("t.text LIKE ? ESCAPE '\\'")
        params.append(f"%{_like(query.text.lower())}%")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _search(conn: sqlite3.Connection, query: TraceFilter) -> tuple[list[TraceSummary], int]:
    where, params = _where(query)
    total = conn.execute(f"SELECT count(*) FROM traces t{where}", params).fetchone()[0]
    rows = conn.execute(
        "SELECT t.id, t.data, "
        "(SELECT count(*) FROM spans s WHERE s.trace_id = t.id) AS span_count, "
        "(SELECT count(*) FROM spans s WHERE s.trace_id = t.id AND s.has_error = 1) AS errored "
        f"FROM traces t{where} ORDER BY t.start_time DESC, t.seq DESC LIMIT ? OFFSET ?",
        [*params, query.limit, query.offset],
    ).fetchall()
    scores = _scores(conn, "trace", [row["id"] for row in rows])
    out = []
    for row in rows:
        data = json.loads(row["data"])
        error = data.get("error_info") or None
        out.append(
            TraceSummary(
                id=row["id"],
                name=data.get("name"),
                project_name=data.get("project_name"),
                start_time=data.get("start_time"),
                end_time=data.get("end_time"),
                tags=data.get("tags") or [],
                span_count=row["span_count"],
                error=_error_text(error),
                errored_spans=row["errored"],
                feedback_scores={s["name"]: s["value"] for s in scores.get(row["id"], [])},
                input=_dumps(data.get("input"))[:SUMMARY_CHARS],
                output=_dumps(data.get("output"))[:SUMMARY_CHARS],
            )
        )
    return out, total


def _error_text(error: dict[str, Any] | None) -> str | None:
    if not error:
        return None
    message = (error.get("message") or "").strip().splitlines()
    kind = error.get("exception_type") or "error"
    return f"{kind}: {message[0]}" if message else kind
