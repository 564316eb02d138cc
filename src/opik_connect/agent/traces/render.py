"""Text views of a trace for the model: a compact span tree (`get_trace`) and one span in full.

The tree is what Ollie reads first, so it must fit in a turn: values are clipped with a marker
saying how much was cut and how to see it all (`get_span`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from opik_connect.agent.traces.store import ErrorInfo, FeedbackScore, Span, TraceWithSpans

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


def feedback_lines(scores: list[FeedbackScore] | None) -> list[str]:
    """Each feedback score with its reason: often the user's own words on what went wrong."""
    lines = []
    for score in scores or []:
        reason = f" — {clip(score.reason.strip(), 500)}" if score.reason else ""
        lines.append(f"{score.name}={score.value:g}{reason}")
    return lines


def _head_lines(record: TraceWithSpans, value_chars: int) -> list[str]:
    trace = record.trace
    head = f"trace {trace.id}"
    if trace.name:
        head += f' "{trace.name}"'
    head += f"  {duration(trace.start_time, trace.end_time)}"
    lines = [head]
    for line in feedback_lines(trace.feedback_scores):
        lines.append(f"  feedback: {line}")
    error = _error_line(trace.error_info)
    if error:
        lines.append(f"  ERROR {error}")
    if trace.metadata:
        lines.append(f"  metadata: {clip(compact_json(trace.metadata), value_chars)}")
    if trace.usage:
        lines.append(f"  usage: {compact_json(trace.usage)}")
    if trace.tags:
        lines.append(f"  tags: {', '.join(trace.tags)}")
    lines.append(f"  input:  {clip(compact_json(trace.input), value_chars)}")
    lines.append(f"  output: {clip(compact_json(trace.output), value_chars)}")
    return lines


def span_lines(span: Span, pad: str = "", value_chars: int = TREE_VALUE_CHARS) -> list[str]:
    """One span as the tree shows it: a head line, its error, its clipped input and output."""
    line = f"{pad}- {span.name or '(unnamed)'} [{span.type}] "
    line += duration(span.start_time, span.end_time)
    if span.model:
        line += f"  model={span.model}"
    line += f"  id={span.id}"
    lines = [line]
    span_error = _error_line(span.error_info)
    if span_error:
        lines.append(f"{pad}    ERROR {span_error}")
    for score in feedback_lines(span.feedback_scores):
        lines.append(f"{pad}    feedback: {score}")
    hint = f"; get_span {span.id} shows all"
    lines.append(f"{pad}    input:  {clip(compact_json(span.input), value_chars, hint)}")
    lines.append(f"{pad}    output: {clip(compact_json(span.output), value_chars, hint)}")
    return lines


def depth_first(record: TraceWithSpans) -> list[tuple[Span, int, str | None]]:
    """Every span once, depth-first, with its depth and a note when its parent is broken."""
    roots, children = _ordered_children(record)
    known = {span.id for span in record.spans}
    out: list[tuple[Span, int, str | None]] = []
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
        note = None
        if span.parent_span_id and depth == 0:
            problem = "forms a cycle" if span.parent_span_id in known else "not in trace"
            note = f"(parent {span.parent_span_id} {problem})"
        out.append((span, depth, note))
        stack.extend((child, depth + 1) for child in reversed(children.get(span.id, [])))
    return out


def priority_rank(span: Span) -> int:
    """0 errored, 1 llm, 2 tool, 3 guardrail, 4 the rest: the order a big trace is shown in."""
    if span.error_info is not None:
        return 0
    return {"llm": 1, "tool": 2, "guardrail": 3}.get(span.type, 4)


def render_trace(
    record: TraceWithSpans,
    *,
    value_chars: int = TREE_VALUE_CHARS,
    max_spans: int = TREE_MAX_SPANS,
) -> str:
    """Feedback, error, metadata and usage first, then the span tree (depth-first).

    A trace with more than `max_spans` spans shows its errored, llm, tool and guardrail spans
    first (flat, each naming its parent), then as much of the tree as fits.
    """
    lines = _head_lines(record, value_chars)
    ordered = depth_first(record)
    errored = sum(1 for span in record.spans if span.error_info is not None)
    counts = f"spans: {len(record.spans)}"
    if errored:
        counts += f" ({errored} errored)"
    if len(ordered) <= max_spans:
        lines.append(f"{counts} (depth-first; get_span ID shows one in full)")
        for span, depth, note in ordered:
            block = span_lines(span, "  " * depth, value_chars)
            if note:
                block[0] += f"  {note}"
            lines.extend(block)
        return "\n".join(lines) + "\n"
    important = sorted(
        (entry for entry in ordered if priority_rank(entry[0]) < 4),
        key=lambda entry: priority_rank(entry[0]),
    )[:max_spans]
    lines.append(
        f"{counts}: too many to show all. Errored, llm, tool and guardrail spans first, then "
        "the tree; list_spans pages through every span, get_span ID shows one in full."
    )
    shown = {span.id for span, _, _ in important}
    for span, _, _ in important:
        block = span_lines(span, "", value_chars)
        block[0] += f"  parent={span.parent_span_id or '-'}"
        lines.extend(block)
    rest = [entry for entry in ordered if entry[0].id not in shown][: max_spans - len(shown)]
    if rest:
        lines.append("tree of the other spans (depth-first):")
    for span, depth, note in rest:
        block = span_lines(span, "  " * depth, value_chars)
        if note:
            block[0] += f"  {note}"
        lines.extend(block)
    hidden = len(ordered) - len(shown) - len(rest)
    if hidden:
        lines.append(f"… {hidden} more spans not shown (list_spans pages through all)")
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
    for score in feedback_lines(span.feedback_scores):
        lines.append(f"feedback: {score}")
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
