"""What the trace sink accepts and answers: Opik's write shapes (TraceWrite, SpanWrite, scores).

Field names are those of the `opik` SDK's REST requests (opik/rest_api/types/trace_write.py,
span_write.py, feedback_score_batch_item.py). Unknown fields are kept (a newer SDK may send more);
a batch is validated whole before anything is stored, so a bad item loses nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from opik_connect.agent.traces.store import ErrorInfo

MAX_BATCH_ITEMS = 1000
"""The SDK's own batchers stop at 1000 (message_processing/batching/batch_manager_constuctors)."""
MAX_TAGS = 100

EntityId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\w.:-]+$")]


class _Write(BaseModel):
    model_config = ConfigDict(extra="allow")

    project_name: str | None = Field(default=None, max_length=300)
    name: str | None = Field(default=None, max_length=1000)
    start_time: datetime | None = None
    end_time: datetime | None = None
    input: Any = None
    output: Any = None
    metadata: Any = None
    tags: list[str] | None = Field(default=None, max_length=MAX_TAGS)
    error_info: ErrorInfo | None = None
    usage: dict[str, Any] | None = None
    last_updated_at: datetime | None = None


class TraceWrite(_Write):
    """One trace of `POST /v1/private/traces/batch` (or the single create)."""

    id: EntityId
    start_time: datetime
    thread_id: str | None = None


class SpanWrite(_Write):
    """One span of `POST /v1/private/spans/batch` (or the single create)."""

    id: EntityId
    trace_id: EntityId
    start_time: datetime
    parent_span_id: str | None = Field(default=None, max_length=128)
    type: Literal["general", "tool", "llm", "guardrail"] = "general"
    model: str | None = None
    provider: str | None = None
    total_estimated_cost: float | None = None


class TraceUpdate(_Write):
    """`PATCH /v1/private/traces/{id}`: only the fields sent change."""

    thread_id: str | None = None


class SpanUpdate(_Write):
    """`PATCH /v1/private/spans/{id}`: only the fields sent change."""

    trace_id: str | None = None
    parent_span_id: str | None = None
    type: Literal["general", "tool", "llm", "guardrail"] | None = None
    model: str | None = None
    provider: str | None = None
    total_estimated_cost: float | None = None


class TraceBatch(BaseModel):
    traces: list[TraceWrite] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class SpanBatch(BaseModel):
    spans: list[SpanWrite] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class ScoreWrite(BaseModel):
    """One score of `PUT /v1/private/{traces|spans}/feedback-scores`; `id` is its target."""

    model_config = ConfigDict(extra="allow")

    id: EntityId
    name: str = Field(min_length=1, max_length=300)
    value: float
    reason: str | None = Field(default=None, max_length=20_000)
    project_name: str | None = None
    source: str | None = None
    category_name: str | None = None


class ScoreBatch(BaseModel):
    scores: list[ScoreWrite] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class TraceFilter(BaseModel):
    """What `traces list` and Ollie's search_traces narrow by; every field is optional."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="Trace name contains this.")
    tag: str | None = Field(default=None, description="Trace has this tag.")
    has_error: bool | None = Field(
        default=None, description="True: the trace or one of its spans has error_info."
    )
    score_below: float | None = Field(
        default=None, description="A feedback score of the trace is below this value."
    )
    score_name: str | None = Field(
        default=None, description="With score_below: only this feedback score."
    )
    since: datetime | None = Field(default=None, description="Started at or after (ISO 8601).")
    text: str | None = Field(default=None, description="Input or output contains this text.")
    limit: int = Field(default=20, ge=1, le=200)
    offset: int = Field(default=0, ge=0)


class TraceSummary(BaseModel):
    """One line of a trace listing."""

    id: str
    name: str | None = None
    project_name: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    tags: list[str] = Field(default_factory=list)
    span_count: int = 0
    error: str | None = None
    errored_spans: int = 0
    feedback_scores: dict[str, float] = Field(default_factory=dict)
    input: str = ""
    output: str = ""


def iso(value: datetime | None) -> str | None:
    """UTC with microseconds and a Z: the stored form, which sorts as text in time order."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
