"""Text views of a trace for the model: a compact span tree (`get_trace`) and one span in full.

The tree is what Ollie reads first, so it must fit in a turn: values are clipped with a marker
saying how much was cut and how to see it all (`get_span`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from opik_connect.agent.traces.store import ErrorInfo, Span, TraceWithSpans

TREE_VALUE_CHARS = 300
"""Input and output of each span in the tree are clipped to this many characters."""
TREE_MAX_SPANS = 200
SPAN_MAX_CHARS = 60_000
"""Even a span 'in full' stops here, so one huge payload cannot fill the model's context."""


def clip(text: str, limit: int, hint: str = "") -> str:
    """`text`, or its first `limit` characters and a marker naming how much was cut."""
    if len(text) <= limit:
        return text
    marker = f" …[clipped {len(text) - limit:,} of {len(text):,} chars{hint}]"
    return text[:limit] + marker


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "?s"
    return f"{(end - start).total_seconds():.3f}s"


def _error_line(error: ErrorInfo | None) -> str | None:
    if error is None:
        return None
    message = (error.message or "").strip().splitlines()
    first = message[0] if message else ""
    text = f"{error.exception_type}: {first}" if first else error.exception_type or "error"
    return clip(text, 200)


def _ordered_children(record: TraceWithSpans) -> tuple[list[Span], dict[str, list[Span]]]:
    """Roots and children by parent, each list by start time then file order."""
    known = {span.id for span in record.spans}
    order = {span.id: index for index, span in enumerate(record.spans)}

    def key(span: Span) -> tuple[float, int]:
        started = span.start_time.timestamp() if span.start_time else float("inf")
        return (started, order[span.id])

    roots: list[Span] = []
    children: dict[str, list[Span]] = {}
    for span in record.spans:
        if span.parent_span_id and span.parent_span_id in known:
            children.setdefault(span.parent_span_id, []).append(span)
        else:
            roots.append(span)
    for siblings in children.values():
        siblings.sort(key=key)
    roots.sort(key=key)
    return roots, children


def render_trace(
    record: TraceWithSpans,
    *,
    value_chars: int = TREE_VALUE_CHARS,
    max_spans: int = TREE_MAX_SPANS,
) -> str:
    """The trace as a depth-first span tree: name, type, duration, model, error; values clipped."""
    trace = record.trace
    hint = "; get_span ID shows all"
    head = f"trace {trace.id}"
    if trace.name:
        head += f' "{trace.name}"'
    head += f"  {duration(trace.start_time, trace.end_time)}"
    error = _error_line(trace.error_info)
    if error:
        head += f"  ERROR {error}"
    lines = [head]
    lines.append(f"  input:  {clip(compact_json(trace.input), value_chars)}")
    lines.append(f"  output: {clip(compact_json(trace.output), value_chars)}")
    if trace.tags:
        lines.append(f"  tags: {', '.join(trace.tags)}")
    lines.append(f"spans: {len(record.spans)} (depth-first; get_span ID shows one in full)")

    roots, children = _ordered_children(record)
    known = {span.id for span in record.spans}
    shown = 0
    seen: set[str] = set()
    stack: list[tuple[Span, int]] = [(span, 0) for span in reversed(roots)]
    while stack or len(seen) < len(known):
        if not stack:
            # Only spans whose parents form a cycle are left: show each as a root, once.
            stack.append((next(s for s in record.spans if s.id not in seen), 0))
        span, depth = stack.pop()
        if span.id in seen:
            continue
        seen.add(span.id)
        if shown == max_spans:
            lines.append(f"… {len(record.spans) - shown} more spans not shown")
            break
        shown += 1
        pad = "  " * depth
        line = f"{pad}- {span.name or '(unnamed)'} [{span.type}] "
        line += duration(span.start_time, span.end_time)
        if span.model:
            line += f"  model={span.model}"
        line += f"  id={span.id}"
        if span.parent_span_id and depth == 0:
            problem = "forms a cycle" if span.parent_span_id in known else "not in trace"
            line += f"  (parent {span.parent_span_id} {problem})"
        lines.append(line)
        span_error = _error_line(span.error_info)
        if span_error:
            lines.append(f"{pad}    ERROR {span_error}")
        span_hint = hint.replace("ID", span.id)
        lines.append(f"{pad}    input:  {clip(compact_json(span.input), value_chars, span_hint)}")
        lines.append(f"{pad}    output: {clip(compact_json(span.output), value_chars, span_hint)}")
        stack.extend((child, depth + 1) for child in reversed(children.get(span.id, [])))
    return "\n".join(lines) + "\n"


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def render_span(span: Span, *, max_chars: int = SPAN_MAX_CHARS) -> str:
    """Every field of one span, values pretty-printed; capped at `max_chars` with a marker."""
    lines = [f'span {span.id} "{span.name or "(unnamed)"}" [{span.type}]']
    lines.append(f"trace: {span.trace_id}  parent: {span.parent_span_id or '-'}")
    start = span.start_time.isoformat() if span.start_time else "?"
    end = span.end_time.isoformat() if span.end_time else "?"
    lines.append(
        f"start: {start}  end: {end}  duration: {duration(span.start_time, span.end_time)}"
    )
    if span.model or span.provider:
        lines.append(f"model: {span.model or '-'}  provider: {span.provider or '-'}")
    if span.usage:
        lines.append(f"usage: {compact_json(span.usage)}")
    if span.tags:
        lines.append(f"tags: {', '.join(span.tags)}")
    if span.error_info is not None:
        error = span.error_info
        lines.append(f"error: {error.exception_type}: {error.message or ''}".rstrip())
        if error.traceback:
            lines.append("traceback:")
            lines.append(error.traceback.rstrip())
    for label, value in (("input", span.input), ("output", span.output)):
        lines.append(f"{label}:")
        lines.append(_pretty(value))
    if span.metadata is not None:
        lines.append("metadata:")
        lines.append(_pretty(span.metadata))
    if span.model_extra:
        lines.append("other fields:")
        lines.append(_pretty(span.model_extra))
    return clip("\n".join(lines), max_chars) + "\n"
