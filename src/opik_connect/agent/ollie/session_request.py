"""What a session is asked (OllieRequest) and the limits that stop it (OllieLimits)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from opik_connect.agent.ollie.suite_cases import TestCase
from opik_connect.protocol import AskRequest, BridgeError, ErrorCode, SuiteRunSummary

NO_KEY_MESSAGE = (
    "No Anthropic API key: set ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL for an "
    "Anthropic-compatible server), then ask again. The model comes from `model` under "
    "[tool.opik-connect] in pyproject.toml."
)
ASKED_FIELDS = frozenset({"question", "trace_id", "suite", "case_ids"})
"""What a session was asked: requests, session records and SessionStarted all carry these."""


class MissingAPIKey(BridgeError):
    """No key configured: Ollie refuses to start rather than pretend to answer."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.NO_API_KEY, NO_KEY_MESSAGE)


class OllieLimits(BaseModel):
    """Each limit, when reached, stops the session with its own status."""

    max_turns: int = Field(30, ge=1, description="Model calls per session -> max_turns.")
    max_output_tokens: int = Field(4096, ge=1, description="max_tokens of each call.")
    token_budget: int = Field(
        1_000_000, ge=1, description="All tokens (input, cache, output) -> token_budget."
    )
    wall_time_s: float = Field(1800.0, gt=0, description="Whole session, decisions included.")
    max_continuations: int = Field(
        1, ge=0, description="max_tokens replies continued in a row before -> max_tokens."
    )
    decision_timeout_s: float | None = Field(
        None, gt=0, description="Wait for the user's decision; None = up to the wall time."
    )


class OllieRequest(BaseModel):
    """What a session is about. `test_cases` replaces reading the suite files when given;
    `last_runs` seeds the last result of each test case (e.g. from the platform's store)."""

    question: str = Field(min_length=1)
    trace_id: str | None = None
    suite: str | None = None
    case_ids: list[str] = Field(default_factory=list)
    test_cases: list[TestCase] | None = None
    last_runs: list[SuiteRunSummary] = Field(default_factory=list)

    @classmethod
    def from_ask(cls, ask: AskRequest, **extra: Any) -> OllieRequest:
        return cls(
            question=ask.question,
            trace_id=ask.trace_id,
            suite=ask.suite,
            case_ids=ask.case_ids,
            **extra,
        )
