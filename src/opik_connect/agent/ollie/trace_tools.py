"""Ollie's tools across traces: search and list them, compare two span by span, page spans.

They let Ollie set a failing trace beside a successful one of the same kind, and reach any span
of a trace too big for get_trace's view. Registered in tool_registry.TOOLS.
"""

from __future__ import annotations

from pydantic import Field

from opik_connect.agent.ollie.tool_base import ToolError, ToolErrorCode, ToolInput, ToolState
from opik_connect.agent.traces.render import (
    clip,
    compact_json,
    depth_first,
    duration,
    feedback_lines,
    span_lines,
)
from opik_connect.agent.traces.sink_models import TraceFilter
from opik_connect.agent.traces.store import Span, TraceNotFound, TraceStoreError, TraceWithSpans
from opik_connect.agent.traces.trace_search import parse_since, summary_line
from opik_connect.agent.traces.trace_search import search_traces as search_traces_in
from opik_connect.protocol import ErrorCode

COMPARE_VALUE_CHARS = 200
COMPARE_MAX_PAIRS = 80


class SearchTracesInput(ToolInput):
    name: str | None = Field(default=None, description="Trace name contains this.")
    tag: str | None = Field(default=None, description="Trace has this tag.")
    has_error: bool | None = Field(
        default=None, description="true: errored traces only; false: clean traces only."
    )
    score_below: float | None = Field(
        default=None, description="A feedback score of the trace is below this."
    )
    score_name: str | None = Field(default=None, description="With score_below: this score.")
    since: str | None = Field(default=None, description="ISO 8601 time, or an age: 30m, 2h, 7d.")
    text: str | None = Field(default=None, description="Input or output contains this text.")
    limit: int = Field(default=20, ge=1, le=50)
    offset: int = Field(default=0, ge=0)


class CompareTracesInput(ToolInput):
    other_trace_id: str = Field(description="The trace to compare with, e.g. a successful one.")
    trace_id: str | None = Field(default=None, description="Defaults to the session's trace.")


class ListSpansInput(ToolInput):
    trace_id: str | None = Field(default=None, description="Defaults to the session's trace.")
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=25, ge=1, le=100)
    type: str | None = Field(default=None, description="llm, tool, general or guardrail.")
    name: str | None = Field(default=None, description="Span name contains this.")
    errors_first: bool = Field(default=True, description="Errored spans before the others.")
    only_errors: bool = False


async def _load(state: ToolState, trace_id: str | None) -> TraceWithSpans:
    wanted = trace_id or state.subject.trace_id
    if not wanted:
        raise ToolError(ToolErrorCode.NO_TRACE, "this session has no trace; pass trace_id")
    try:
        return await state.traces.get(wanted)
    except TraceNotFound as exc:
        raise ToolError(ToolErrorCode.TRACE_NOT_FOUND, str(exc), trace_id=wanted) from exc
    except TraceStoreError as exc:
        raise ToolError(ToolErrorCode.TRACE_UNAVAILABLE, str(exc), trace_id=wanted) from exc


async def search_traces(state: ToolState, args: SearchTracesInput) -> str:
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise ToolError(ErrorCode.INVALID_ARGS, str(exc), field="since") from exc
    query = TraceFilter(**args.model_dump(exclude={"since"}), since=since)
    found, total = await search_traces_in(state.traces, query)
    if not found:
        return f"no traces match (looked in {state.traces.looked_in()})\n"
    head = f"{len(found)} of {total} matching trace(s), newest first"
    if args.offset + len(found) < total:
        head += f"; offset={args.offset + len(found)} for more"
    return "\n".join([head, *(summary_line(item) for item in found)]) + "\n"


async def list_spans(state: ToolState, args: ListSpansInput) -> str:
    record = await _load(state, args.trace_id)
    entries = depth_first(record)
    if args.type:
        entries = [e for e in entries if e[0].type == args.type]
    if args.name:
        entries = [e for e in entries if args.name.lower() in (e[0].name or "").lower()]
    if args.only_errors:
        entries = [e for e in entries if e[0].error_info is not None]
    if args.errors_first:
        entries.sort(key=lambda e: e[0].error_info is None)
    page = entries[args.offset : args.offset + args.limit]
    end = args.offset + len(page)
    lines = [
        f"trace {record.trace.id}: spans {args.offset + 1}–{end} of {len(entries)} "
        f"(of {len(record.spans)} in all; depth-first"
        + (", errored first)" if args.errors_first else ")")
    ]
    if end < len(entries):
        lines[0] += f"; offset={end} for more"
    for span, depth, _ in page:
        block = span_lines(span)
        block[0] += f"  depth={depth}  parent={span.parent_span_id or '-'}"
        lines.extend(block)
    return "\n".join(lines) + "\n"


async def compare_traces(state: ToolState, args: CompareTracesInput) -> str:
    first = await _load(state, args.trace_id)
    second = await _load(state, args.other_trace_id)
    return compare(first, second)


def _head(label: str, record: TraceWithSpans) -> str:
    trace = record.trace
    line = f'{label}: trace {trace.id} "{trace.name or "(unnamed)"}"  '
    line += f"{duration(trace.start_time, trace.end_time)}  {len(record.spans)} spans"
    errored = sum(1 for span in record.spans if span.error_info is not None)
    if trace.error_info is not None or errored:
        line += f"  errors: {errored} span(s)" + (", trace" if trace.error_info else "")
    scores = feedback_lines(trace.feedback_scores)
    if scores:
        line += f"  feedback: {'; '.join(scores)}"
    return line


def _keyed(record: TraceWithSpans) -> dict[str, Span]:
    """Each span under its path of names from the root, with #n for repeated siblings."""
    keys: dict[str, Span] = {}
    path_of: dict[str, str] = {}
    for span, _, _ in depth_first(record):
        parent = path_of.get(span.parent_span_id or "", "")
        base = f"{parent}/{span.name or '?'}"
        key, n = base, 1
        while key in keys:
            n += 1
            key = f"{base}#{n}"
        keys[key] = span
        path_of[span.id] = key
    return keys


def _path(record: TraceWithSpans) -> str:
    names = []
    for span, depth, _ in depth_first(record):
        mark = "!" if span.error_info is not None else ""
        names.append(f"{'.' * depth}{span.name or '?'}{mark}")
    return " > ".join(names)


def _seconds(span: Span) -> float | None:
    if span.start_time is None or span.end_time is None:
        return None
    return (span.end_time - span.start_time).total_seconds()


def _error(span: Span) -> str:
    if span.error_info is None:
        return "ok"
    return f"{span.error_info.exception_type}: {(span.error_info.message or '').strip()}"


def _differences(a: Span, b: Span) -> list[str]:
    out = []
    if _error(a) != _error(b):
        out.append(f"    error: A {clip(_error(a), 200)} | B {clip(_error(b), 200)}")
    for field in ("input", "output"):
        left, right = compact_json(getattr(a, field)), compact_json(getattr(b, field))
        if left != right:
            out.append(
                f"    {field}: A {clip(left, COMPARE_VALUE_CHARS)} | "
                f"B {clip(right, COMPARE_VALUE_CHARS)}"
            )
    if a.type != b.type or a.model != b.model:
        out.append(f"    type/model: A {a.type} {a.model or ''} | B {b.type} {b.model or ''}")
    da, db = _seconds(a), _seconds(b)
    if da is not None and db is not None and abs(da - db) > 0.5 * max(da, db, 0.001):
        out.append(f"    duration: A {da:.3f}s | B {db:.3f}s")
    return out


def compare(first: TraceWithSpans, second: TraceWithSpans) -> str:
    """Paths, then each span pair that differs, then spans only in one trace."""
    lines = [_head("A", first), _head("B", second)]
    lines.append(f"path A: {_path(first)}")
    lines.append(f"path B: {_path(second)}")
    for field in ("input", "output"):
        left = compact_json(getattr(first.trace, field))
        right = compact_json(getattr(second.trace, field))
        lines.append(f"trace {field}: A {clip(left, 300)} | B {clip(right, 300)}")
    keyed_a, keyed_b = _keyed(first), _keyed(second)
    same = 0
    shown = 0
    lines.append("span by span (matched by their path of names; ids A/B):")
    for key, span in keyed_a.items():
        other = keyed_b.get(key)
        if other is None:
            continue
        diffs = _differences(span, other)
        if not diffs:
            same += 1
            continue
        if shown == COMPARE_MAX_PAIRS:
            lines.append("  … more differing spans not shown (get_span or list_spans for each)")
            break
        shown += 1
        lines.append(f"  ~ {key} [{span.type}] ids {span.id} / {other.id}")
        lines.extend(diffs)
    lines.append(f"  {same} matched span(s) identical in input, output, error and type")
    only_a = [f"{key} id={span.id}" for key, span in keyed_a.items() if key not in keyed_b]
    only_b = [f"{key} id={span.id}" for key, span in keyed_b.items() if key not in keyed_a]
    if only_a:
        lines.append(f"only in A ({len(only_a)}): " + "; ".join(only_a[:30]))
    if only_b:
        lines.append(f"only in B ({len(only_b)}): " + "; ".join(only_b[:30]))
    return "\n".join(lines) + "\n"
