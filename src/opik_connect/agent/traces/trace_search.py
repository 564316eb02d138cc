"""Finding traces by filter across the places a TraceStore reads: the sink and trace files.

The sink answers with SQL (indexed); a trace directory is small and read whole, each trace tested
against the same TraceFilter in Python. The Opik server is only asked for traces by id.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from opik_connect.agent.traces.sink_models import TraceFilter, TraceSummary
from opik_connect.agent.traces.store import (
    TraceStore,
    TraceStoreError,
    TraceWithSpans,
    read_document,
)

SUMMARY_CHARS = 120


def _text(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def summarize(record: TraceWithSpans) -> TraceSummary:
    trace = record.trace
    error = trace.error_info
    message = ((error.message or "").strip().splitlines() or [""])[0] if error else ""
    return TraceSummary(
        id=trace.id,
        name=trace.name,
        project_name=(trace.model_extra or {}).get("project_name"),
        start_time=trace.start_time,
        end_time=trace.end_time,
        tags=trace.tags or [],
        span_count=len(record.spans),
        error=(f"{error.exception_type}: {message}" if message else error.exception_type)
        if error
        else None,
        errored_spans=sum(1 for span in record.spans if span.error_info is not None),
        feedback_scores={score.name: score.value for score in trace.feedback_scores or []},
        input=_text(trace.input)[:SUMMARY_CHARS],
        output=_text(trace.output)[:SUMMARY_CHARS],
    )


def matches(record: TraceWithSpans, query: TraceFilter) -> bool:
    """The same test the sink's SQL makes, for a trace read from a file."""
    trace = record.trace
    if query.name and query.name.lower() not in (trace.name or "").lower():
        return False
    if query.tag and query.tag not in (trace.tags or []):
        return False
    if query.has_error is not None:
        errored = trace.error_info is not None or any(s.error_info for s in record.spans)
        if errored != query.has_error:
            return False
    if query.score_below is not None and not any(
        score.value < query.score_below and query.score_name in (None, score.name)
        for score in trace.feedback_scores or []
    ):
        return False
    if query.since is not None:
        since = query.since if query.since.tzinfo else query.since.replace(tzinfo=UTC)
        if trace.start_time is None or trace.start_time < since:
            return False
    if query.text:
        haystack = _text([trace.input, trace.output]).lower()
        if query.text.lower() not in haystack:
            return False
    return True


def _directory_records(store: TraceStore) -> list[TraceWithSpans]:
    if store.directory is None or not store.directory.directory.is_dir():
        return []
    records = []
    for path in sorted(store.directory.directory.glob("*.json")):
        try:
            records.append(read_document(path))
        except TraceStoreError:
            continue
    return records


async def search_traces(store: TraceStore, query: TraceFilter) -> tuple[list[TraceSummary], int]:
    """Matching traces from the sink and the trace directory, newest first, and the total."""
    found: list[TraceSummary] = []
    total = 0
    if store.sink is not None:
        wide = query.model_copy(update={"limit": query.offset + query.limit, "offset": 0})
        found, total = await store.sink.search(wide)
    seen = {item.id for item in found}
    for record in await asyncio.to_thread(_directory_records, store):
        if record.trace.id not in seen and matches(record, query):
            found.append(summarize(record))
            total += 1
    found.sort(key=lambda item: item.start_time.timestamp() if item.start_time else 0, reverse=True)
    return found[query.offset : query.offset + query.limit], total


def summary_line(item: TraceSummary) -> str:
    """One compact line: when, id, name, size, error, scores, tags, clipped input and output."""
    when = item.start_time.strftime("%Y-%m-%d %H:%M:%S") if item.start_time else "?"
    parts = [when, item.id, f'"{item.name or "(unnamed)"}"', f"{item.span_count} spans"]
    if item.error:
        parts.append(f"ERROR {item.error}")
    if item.errored_spans:
        parts.append(f"{item.errored_spans} errored span(s)")
    if item.feedback_scores:
        scores = ", ".join(f"{name}={value:g}" for name, value in item.feedback_scores.items())
        parts.append(f"scores {scores}")
    if item.tags:
        parts.append(f"tags {','.join(item.tags)}")
    parts.append(f"in {item.input} → out {item.output}")
    return "  ".join(parts)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """ISO 8601, or an age such as `30m`, `2h`, `7d` (before now)."""
    value = text.strip()
    if value[:-1].isdigit() and value[-1:] in _UNITS:
        return (now or datetime.now(UTC)) - timedelta(seconds=int(value[:-1]) * _UNITS[value[-1]])
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"since: {text!r} is neither ISO 8601 nor an age like 2h or 7d") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
