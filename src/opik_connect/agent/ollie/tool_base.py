"""What every Ollie tool is made of: a typed input model, an async function, a named error.

A tool is one pydantic input model (its schema is what the model is shown, and the same model
validates the call), one async function from the session's state and that input to the text the
model reads, and one entry in `tool_registry.TOOLS`. A tool reports a failure the model can act
on by raising ToolError (or letting a BridgeError through); the dispatcher turns every exception
into an `is_error` result, so no tool can end the session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from opik_connect.agent.ollie.events import SessionEmitter
from opik_connect.agent.ollie.suite_cases import LastResults, TestCaseSource
from opik_connect.agent.platform.runner_api import Runner
from opik_connect.agent.traces.store import TraceStore
from opik_connect.tool_schema import input_schema

if TYPE_CHECKING:
    from opik_connect.agent.ollie.case_drafts import DraftedCase


class ToolErrorCode(StrEnum):
    """Errors raised by the tools themselves (bridge errors keep protocol.ErrorCode)."""

    NO_TRACE = "no_trace"
    TRACE_NOT_FOUND = "trace_not_found"
    TRACE_UNAVAILABLE = "trace_unavailable"
    SPAN_NOT_FOUND = "span_not_found"
    NO_SUITE = "no_suite"
    DECISION_TIMEOUT = "decision_timeout"
    TOOL_FAILED = "tool_failed"


class ToolError(Exception):
    """A failure the model should read and act on; never ends the session."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message
        self.details = details


class ToolInput(BaseModel):
    """Base for the inputs of tools that are not bridge commands: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class SessionSubject:
    """What the session was asked about; tool arguments default to it."""

    trace_id: str | None
    suite: str | None
    case_ids: list[str] = field(default_factory=list)


@dataclass
class ToolState:
    """One session's view of the world that its tools share, and what they record."""

    runner: Runner
    traces: TraceStore
    cases: TestCaseSource
    subject: SessionSubject
    emitter: SessionEmitter
    last_results: LastResults = field(default_factory=LastResults)
    decision_timeout_s: float | None = None
    proposal_ids: list[str] = field(default_factory=list)
    decisions: dict[str, str] = field(default_factory=dict)
    held_proposals: int = 0
    """Proposals the daemon held back unverified; bounds Ollie's revisions before the user."""
    drafted_cases: dict[tuple[str, str], DraftedCase] = field(default_factory=dict)
    """Suite items drafted from traces, by (suite, id); every proposal carries them."""


InputT = TypeVar("InputT", bound=BaseModel)


@dataclass(frozen=True)
class Tool(Generic[InputT]):
    """A tool as the model sees it (name, description, schema of `input_model`) and its code."""

    name: str
    description: str
    input_model: type[InputT]
    run: Callable[[ToolState, InputT], Awaitable[str]]

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": input_schema(self.input_model),
        }
