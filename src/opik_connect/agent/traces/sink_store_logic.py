"""The trace sink's rules, written once for both backends: how a write merges, what is indexed,
and the reads (get, search) over a backend's `_fetch` of shared SQL.

A write is an upsert by id, as on Opik's server: the fields it carries replace those stored (a
shallow merge of the JSON document, `dict.update`), the rest stay. Derived columns (name,
start_time, has_error, the lowercased searchable text) are recomputed from the merged document.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from opik_connect.agent.traces.sink_models import (
    SpanUpdate,
    SpanWrite,
    TraceFilter,
    TraceSummary,
    TraceUpdate,
    TraceWrite,
    iso,
)
from opik_connect.agent.traces.store import TraceWithSpans, parse_trace_document

DEFAULT_MAX_TRACES = 10_000
SPANS_PER_TRACE = 100
"""The span cap is max_traces times this; past it the oldest spans go, orphans included."""
SUMMARY_CHARS = 120
SCORE_CHUNK = 500
"""Ids per `IN (...)` when reading scores (below SQLite's variable limit)."""


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def write_fields(model: BaseModel) -> dict[str, Any]:
    """The fields a write carried (None means 'not sent', as the SDK drops Nones)."""
    data = model.model_dump(mode="json", exclude_none=True)
    for key in ("start_time", "end_time", "last_updated_at"):
        value = getattr(model, key, None)
        if value is not None:
            data[key] = iso(value)
    return data


def keyed_fields(
    items: Sequence[TraceWrite | SpanWrite | tuple[str, TraceUpdate | SpanUpdate]],
) -> list[tuple[str, dict[str, Any]]]:
    """(id, fields) of each write: a create names its id, a PATCH comes with it."""
    keyed = []
    for item in items:
        entity_id, write = item if isinstance(item, tuple) else (item.id, item)
        keyed.append((entity_id, write_fields(write)))
    return keyed


def merged(stored: dict[str, Any] | None, entity_id: str, fields: dict[str, Any]):
    """The document after a write: the stored one with the write's fields replacing its own."""
    data = dict(stored or {})
    data.update(fields)
    data["id"] = entity_id
    return data


def searchable(data: dict[str, Any]) -> str:
    return dumps([data.get("input"), data.get("output")]).lower()


def trace_columns(data: dict[str, Any]) -> tuple[Any, ...]:
    """(project_name, name, start_time, has_error, text) of a merged trace document."""
    return (
        data.get("project_name"),
        data.get("name"),
        data.get("start_time"),
        int(bool(data.get("error_info"))),
        searchable(data),
    )


def span_columns(data: dict[str, Any]) -> tuple[Any, ...]:
    """(trace_id, start_time, has_error) of a merged span document."""
    return (data["trace_id"], data.get("start_time"), int(bool(data.get("error_info"))))


def score_document(score: BaseModel) -> dict[str, Any]:
    return score.model_dump(mode="json", exclude_none=True, exclude={"id"})


def loaded(value: Any) -> Any:
    """A JSON column's value: text from SQLite, already decoded from PostgreSQL's json."""
    return json.loads(value) if isinstance(value, str) else value


_ERRORED = (
    "(t.has_error = 1 OR EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.id "
    "AND s.has_error = 1))"
)
_SPANS_OF_TRACE = "SELECT data FROM spans WHERE trace_id = ? ORDER BY start_time NULLS FIRST, seq"
_SEARCH = (
    "SELECT t.id, t.data, "
    "(SELECT count(*) FROM spans s WHERE s.trace_id = t.id) AS span_count, "
    "(SELECT count(*) FROM spans s WHERE s.trace_id = t.id AND s.has_error = 1) AS errored "
    "FROM traces t{where} ORDER BY t.start_time DESC NULLS LAST, t.seq DESC LIMIT ? OFFSET ?"
)


class SqlSinkReads(ABC):
    """get and search, for a backend that supplies `_fetch` (SQL with `?` placeholders)."""

    name_like = "LIKE"
    """How a name filter matches regardless of case: SQLite's LIKE is case-blind already."""

    @abstractmethod
    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    async def get(self, trace_id: str) -> TraceWithSpans | None:
        """The trace with its spans and feedback scores, in TracePublic/SpanPublic shape."""
        rows = await self._fetch("SELECT data FROM traces WHERE id = ?", (trace_id,))
        if not rows:
            return None
        trace = loaded(rows[0]["data"])
        spans = [loaded(row["data"]) for row in await self._fetch(_SPANS_OF_TRACE, (trace_id,))]
        trace_scores = (await self._scores("trace", [trace_id])).get(trace_id)
        if trace_scores:
            trace["feedback_scores"] = trace_scores
        span_scores = await self._scores("span", [span["id"] for span in spans])
        for span in spans:
            if span["id"] in span_scores:
                span["feedback_scores"] = span_scores[span["id"]]
        return parse_trace_document({"trace": trace, "spans": spans}, "trace sink")

    async def search(self, query: TraceFilter) -> tuple[list[TraceSummary], int]:
        """Matching traces, newest first, and how many match in all."""
        where, params = self._where(query)
        counted = await self._fetch(f"SELECT count(*) AS n FROM traces t{where}", params)
        rows = await self._fetch(_SEARCH.format(where=where), [*params, query.limit, query.offset])
        scores = await self._scores("trace", [row["id"] for row in rows])
        return [_summary(row, scores.get(row["id"], [])) for row in rows], int(counted[0]["n"])

    async def _scores(self, entity: str, entity_ids: list[str]) -> dict[str, list]:
        found: dict[str, list] = {}
        for start in range(0, len(entity_ids), SCORE_CHUNK):
            chunk = entity_ids[start : start + SCORE_CHUNK]
            marks = ", ".join("?" for _ in chunk)
            rows = await self._fetch(
                f"SELECT entity_id, data FROM scores WHERE entity = ? AND entity_id IN ({marks}) "
                "ORDER BY name",
                (entity, *chunk),
            )
            for row in rows:
                found.setdefault(row["entity_id"], []).append(loaded(row["data"]))
        return found

    def _where(self, query: TraceFilter) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.name:
            clauses.append(f"t.name {self.name_like} ? ESCAPE '\\'")
            params.append(f"%{_like(query.name)}%")
        if query.tag:
            clauses.append(
                "EXISTS (SELECT 1 FROM trace_tags g WHERE g.trace_id = t.id AND g.tag = ?)"
            )
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


def _summary(row: dict[str, Any], scores: list[dict[str, Any]]) -> TraceSummary:
    data = loaded(row["data"])
    return TraceSummary(
        id=row["id"],
        name=data.get("name"),
        project_name=data.get("project_name"),
        start_time=data.get("start_time"),
        end_time=data.get("end_time"),
        tags=data.get("tags") or [],
        span_count=row["span_count"],
        error=_error_text(data.get("error_info") or None),
        errored_spans=row["errored"],
        feedback_scores={s["name"]: s["value"] for s in scores},
        input=dumps(data.get("input"))[:SUMMARY_CHARS],
        output=dumps(data.get("output"))[:SUMMARY_CHARS],
    )


def _error_text(error: dict[str, Any] | None) -> str | None:
    if not error:
        return None
    message = (error.get("message") or "").strip().splitlines()
    kind = error.get("exception_type") or "error"
    return f"{kind}: {message[0]}" if message else kind
