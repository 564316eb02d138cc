"""The tools that show the session's trace to the model: the span tree, and one span in full."""

from __future__ import annotations

from pydantic import Field

from opik_connect.agent.ollie.tool_base import ToolError, ToolErrorCode, ToolInput, ToolState
from opik_connect.agent.traces.render import render_span, render_trace
from opik_connect.agent.traces.store import TraceNotFound, TraceStoreError, TraceWithSpans


class GetTraceInput(ToolInput):
    trace_id: str | None = Field(None, description="Defaults to the session's trace.")


class GetSpanInput(ToolInput):
    span_id: str = Field(description="A span id, as get_trace lists them.")
    trace_id: str | None = Field(None, description="Defaults to the session's trace.")


async def session_trace(state: ToolState, trace_id: str | None) -> TraceWithSpans:
    """The named trace, or the session's; each way it can be missing is a named ToolError."""
    trace_id = trace_id or state.subject.trace_id
    if not trace_id:
        raise ToolError(ToolErrorCode.NO_TRACE, "this session has no trace; pass trace_id")
    try:
        return await state.traces.get(trace_id)
    except TraceNotFound as exc:
        raise ToolError(ToolErrorCode.TRACE_NOT_FOUND, str(exc), trace_id=trace_id) from exc
    except TraceStoreError as exc:
        raise ToolError(ToolErrorCode.TRACE_UNAVAILABLE, str(exc), trace_id=trace_id) from exc


async def get_trace(state: ToolState, args: GetTraceInput) -> str:
    return render_trace(await session_trace(state, args.trace_id))


async def get_span(state: ToolState, args: GetSpanInput) -> str:
    record = await session_trace(state, args.trace_id)
    span = record.span(args.span_id)
    if span is None:
        raise ToolError(
            ToolErrorCode.SPAN_NOT_FOUND,
            f"no span {args.span_id!r} in trace {record.trace.id}; get_trace lists span ids",
            span_id=args.span_id,
        )
    return render_span(span)
