"""What an Ollie session reports while it runs, and how it ended.

The platform server streams these to whoever asked (as `protocol.AskEvent`, see `to_ask_event`) and
stores them; nothing here imports the loop, so clients can parse events without the SDK.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from opik_connect.protocol import AskEvent, FileStat


class SessionStatus(StrEnum):
    """How a session ended. Only `completed` carries a final answer."""

    COMPLETED = "completed"
    MAX_TURNS = "max_turns"
    TOKEN_BUDGET = "token_budget"
    WALL_TIME = "wall_time"
    MAX_TOKENS = "max_tokens"
    CONTEXT_WINDOW = "context_window"
    REFUSED = "refused"
    ERROR = "error"
    CANCELLED = "cancelled"


class TokenUsage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @property
    def total(self) -> int:
        """Every token the budget counts: fresh input, cache writes, cache reads and output."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens
            + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
        )


class _Event(BaseModel):
    session_id: str
    seq: int
    at: float = Field(default_factory=time.time)


class SessionStarted(_Event):
    type: Literal["session_started"] = "session_started"
    question: str
    trace_id: str | None
    suite: str | None
    case_ids: list[str]
    model: str
    transcript_path: str


class TurnStarted(_Event):
    type: Literal["turn_started"] = "turn_started"
    turn: int


class AssistantText(_Event):
    """Text the model wrote alongside tool calls (its reasoning as it goes)."""

    type: Literal["assistant_text"] = "assistant_text"
    turn: int
    text: str


class ToolCalled(_Event):
    type: Literal["tool_called"] = "tool_called"
    turn: int
    tool_use_id: str
    name: str
    input: dict[str, Any]


class ToolResulted(_Event):
    type: Literal["tool_resulted"] = "tool_resulted"
    turn: int
    tool_use_id: str
    name: str
    is_error: bool
    error_code: str | None = None
    preview: str = Field(description="The start of what the model got back.")


class ProposalSent(_Event):
    """The daemon accepted a proposal; it now waits for the user's decision, or, held back
    because its verification failed, for Ollie's revision."""

    type: Literal["proposal_sent"] = "proposal_sent"
    proposal_id: str
    title: str
    files: list[FileStat]
    diff: str
    verification: str | None = Field(None, description="The daemon's verification line.")
    held: bool = False


class DecisionReceived(_Event):
    type: Literal["decision_received"] = "decision_received"
    proposal_id: str
    decision: Literal["approved", "rejected", "stale"]
    reason: str | None = None
    branch: str | None = None
    suite_statuses: dict[str, str] = Field(default_factory=dict)


class SuiteRan(_Event):
    type: Literal["suite_ran"] = "suite_ran"
    run_id: str
    suite: str
    status: str
    tree: str


class FinalAnswer(_Event):
    type: Literal["final_answer"] = "final_answer"
    text: str


class SessionStopped(_Event):
    """Always the last event of a session, whatever happened."""

    type: Literal["session_stopped"] = "session_stopped"
    status: SessionStatus
    detail: str
    turns: int
    usage: TokenUsage
    cost_usd_estimate: float | None


SessionEvent = Annotated[
    SessionStarted
    | TurnStarted
    | AssistantText
    | ToolCalled
    | ToolResulted
    | ProposalSent
    | DecisionReceived
    | SuiteRan
    | FinalAnswer
    | SessionStopped,
    Field(discriminator="type"),
]
SESSION_EVENT = TypeAdapter(SessionEvent)
"""Parses any event back from its JSON (`SESSION_EVENT.validate_json(...)`)."""

EventSink = Callable[[SessionEvent], Awaitable[None]]
"""Receives every event in order. It should not raise: an exception stops the session (error)."""


def to_ask_event(event: SessionEvent) -> AskEvent:
    """The wire form: `type` and `seq` lifted out, every other field in `data`."""
    data = event.model_dump(mode="json", exclude={"session_id", "seq", "type"})
    return AskEvent(session_id=event.session_id, seq=event.seq, type=event.type, data=data)


class SessionResult(BaseModel):
    """What `Ollie.run_session` returns once the session has stopped."""

    session_id: str
    status: SessionStatus
    detail: str
    final_answer: str | None = None
    turns: int
    usage: TokenUsage
    cost_usd_estimate: float | None = Field(
        description="Estimated from a built-in price table; None for a model it does not list."
    )
    transcript_path: str
    proposal_ids: list[str] = Field(default_factory=list)
    decisions: dict[str, str] = Field(default_factory=dict, description="proposal id -> decision")


class SessionEmitter:
    """Numbers events and hands them to the sink; the loop and the tools share one per session."""

    def __init__(self, session_id: str, sink: EventSink | None) -> None:
        self.session_id = session_id
        self._sink = sink
        self._seq = 0

    async def emit(self, event_type: type[_Event], **fields: Any) -> None:
        self._seq += 1
        event = event_type(session_id=self.session_id, seq=self._seq, **fields)
        if self._sink is not None:
            await self._sink(event)  # type: ignore[arg-type]
