"""Ollie: the tool-using loop over the Anthropic Messages API that turns a failing trace into a fix.

One `run_session` call is one session: it talks to the model until a final answer or a limit,
runs the tools the model asks for, reports progress as events and records a JSONL transcript.

Stop reasons: `end_turn`/`stop_sequence` end the session with the reply as the final answer (an
empty reply is nudged once, as below); `tool_use` runs the tools and continues; `pause_turn`
sends the paused turn back so the model resumes it; `max_tokens` continues up to
`OllieLimits.max_continuations` times in a row (the cut-off reply is kept as text, a half-written
tool call in it is dropped, and the model is told so), then stops with `max_tokens`; `refusal`
stops with `refused`; `model_context_window_exceeded` stops with `context_window`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from opik_connect.agent.ollie.events import (
    AssistantText,
    EventSink,
    FinalAnswer,
    SessionEmitter,
    SessionEvent,
    SessionResult,
    SessionStarted,
    SessionStatus,
    SessionStopped,
    TokenUsage,
    ToolCalled,
    ToolResulted,
    TurnStarted,
)
from opik_connect.agent.ollie.model_prices import estimate_cost, price_for
from opik_connect.agent.ollie.prompt import (
    CUT_OFF_NOTE,
    EMPTY_REPLY_NOTE,
    SYSTEM_PROMPT,
    opening_message,
)
from opik_connect.agent.ollie.suite_cases import (
    LastResults,
    RunnerSuiteCases,
    StaticCases,
    TestCase,
    TestCaseSource,
)
from opik_connect.agent.ollie.tools import OllieTools, SessionContext, tool_definitions_for_request
from opik_connect.agent.ollie.transcript import COST_NOTE, TranscriptWriter, transcript_path
from opik_connect.agent.platform.runner_api import Runner
from opik_connect.agent.traces.store import TraceStore
from opik_connect.config import DEFAULT_MODEL, ProjectConfig

if TYPE_CHECKING:
    import anthropic
from opik_connect.protocol import AskRequest, BridgeError, ErrorCode, SuiteRunSummary

NO_KEY_MESSAGE = (
    "No Anthropic API key: set ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL for an "
    "Anthropic-compatible server), then ask again. The model comes from `model` under "
    "[tool.opik-connect] in pyproject.toml."
)
PREVIEW_CHARS = 500
TRANSCRIPT_EVENTS = {"proposal_sent", "decision_received", "suite_ran"}

log = logging.getLogger(__name__)


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


def _usage(response: Any) -> TokenUsage:
    usage = response.usage
    return TokenUsage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_creation_input_tokens=getattr(usage, "cache_creation_input_tokens", 0) or 0,
        cache_read_input_tokens=getattr(usage, "cache_read_input_tokens", 0) or 0,
    )


def _content_params(response: Any) -> list[dict[str, Any]]:
    """The reply's blocks in request form, to send back as the assistant turn."""
    blocks: list[dict[str, Any]] = []
    for block in response.content:
        if block.type == "text":
            blocks.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            blocks.append(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
            )
        else:
            blocks.append(block.model_dump(mode="json", exclude_none=True))
    return blocks


def _with_cache_breakpoint(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy whose last block is a cache breakpoint, so each turn reuses the previous prefix."""
    copied = [dict(message, content=list(message["content"])) for message in messages]
    last = copied[-1]["content"]
    last[-1] = {**last[-1], "cache_control": {"type": "ephemeral"}}
    return copied


class _Stop(Exception):
    def __init__(self, status: SessionStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Ollie:
    """A configured model client. One instance serves many sessions (concurrently, too)."""

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        api_key: str | None = None,
        base_url: str | None = None,
        limits: OllieLimits | None = None,
        max_retries: int = 4,
        request_timeout_s: float = 300.0,
        transcript_dir: Path | None = None,
    ) -> None:
        key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise MissingAPIKey()
        self.model = model
        self.limits = limits or OllieLimits()
        self.transcript_dir = transcript_dir
        import anthropic  # here, not at the top: it takes a second to import, on every CLI start

        self.client: anthropic.AsyncAnthropic = anthropic.AsyncAnthropic(
            api_key=key,
            base_url=base_url or os.environ.get("ANTHROPIC_BASE_URL") or None,
            max_retries=max_retries,
            timeout=request_timeout_s,
        )

    async def aclose(self) -> None:
        """Close the HTTP connections of the model client."""
        await self.client.close()

    async def __aenter__(self) -> Ollie:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @classmethod
    def from_config(cls, config: ProjectConfig, **overrides: Any) -> Ollie:
        """Model from `[tool.opik-connect] model`; key and base URL from the environment."""
        overrides.setdefault("model", config.model)
        return cls(**overrides)

    async def run_session(
        self,
        request: OllieRequest,
        *,
        runner: Runner,
        traces: TraceStore,
        on_event: EventSink | None = None,
        session_id: str | None = None,
        limits: OllieLimits | None = None,
    ) -> SessionResult:
        """Run one session to its end; never raises for a model or tool failure (see status)."""
        session = _Session(
            ollie=self,
            request=request,
            runner=runner,
            traces=traces,
            on_event=on_event,
            session_id=session_id or f"ses_{uuid.uuid4().hex[:16]}",
            limits=limits or self.limits,
        )
        return await session.run()


class _Session:
    """The state of one session; lives only inside run_session."""

    def __init__(
        self,
        *,
        ollie: Ollie,
        request: OllieRequest,
        runner: Runner,
        traces: TraceStore,
        on_event: EventSink | None,
        session_id: str,
        limits: OllieLimits,
    ) -> None:
        self.ollie = ollie
        self.request = request
        self.limits = limits
        self.session_id = session_id
        self.path = transcript_path(session_id, ollie.transcript_dir)
        self.transcript = TranscriptWriter(self.path)
        self._on_event = on_event
        self.emitter = SessionEmitter(session_id, self._sink)
        cases: TestCaseSource = (
            StaticCases(request.test_cases)
            if request.test_cases is not None
            else RunnerSuiteCases(runner)
        )
        self.tools = OllieTools(
            runner=runner,
            traces=traces,
            cases=cases,
            context=SessionContext(request.trace_id, request.suite, list(request.case_ids)),
            emitter=self.emitter,
            last_results=LastResults(request.last_runs),
            decision_timeout_s=limits.decision_timeout_s,
        )
        self.messages: list[dict[str, Any]] = []
        self.turns = 0
        self.usage = TokenUsage()
        self.cost: float | None = 0.0
        self.final_answer: str | None = None

    async def _sink(self, event: SessionEvent) -> None:
        if event.type in TRANSCRIPT_EVENTS:
            self.transcript.write("event", event=event.model_dump(mode="json"))
        if self._on_event is not None:
            await self._on_event(event)

    async def run(self) -> SessionResult:
        import anthropic  # loaded already: the session's Ollie made the client

        status, detail = SessionStatus.ERROR, "session did not start"
        deadline = asyncio.timeout(self.limits.wall_time_s)
        try:
            async with deadline:
                await self._start()
                status, detail = await self._loop()
        except _Stop as stop:
            status, detail = stop.status, stop.detail
        except TimeoutError as exc:
            if deadline.expired():
                status = SessionStatus.WALL_TIME
                detail = f"wall time of {self.limits.wall_time_s:g}s reached"
            else:
                status, detail = SessionStatus.ERROR, f"internal error: {exc!r}"
        except anthropic.APIStatusError as exc:
            status = SessionStatus.ERROR
            detail = f"Anthropic API error {exc.status_code} after retries: {exc.message}"
        except anthropic.APIError as exc:
            status, detail = SessionStatus.ERROR, f"Anthropic API unreachable: {exc.message}"
        except asyncio.CancelledError:
            status, detail = SessionStatus.CANCELLED, "the session was cancelled"
            raise
        except Exception as exc:
            log.exception("Ollie session %s failed", self.session_id)
            status, detail = SessionStatus.ERROR, f"internal error: {exc!r}"
        finally:
            await self._finish(status, detail)
        return SessionResult(
            session_id=self.session_id,
            status=status,
            detail=detail,
            final_answer=self.final_answer,
            turns=self.turns,
            usage=self.usage,
            cost_usd_estimate=self.cost,
            transcript_path=str(self.path),
            proposal_ids=list(self.tools.proposal_ids),
            decisions=dict(self.tools.decisions),
        )

    async def _start(self) -> None:
        request = self.request
        self.transcript.write(
            "session_started",
            session_id=self.session_id,
            model=self.ollie.model,
            question=request.question,
            trace_id=request.trace_id,
            suite=request.suite,
            case_ids=request.case_ids,
            limits=self.limits.model_dump(),
            at=time.time(),
        )
        await self.emitter.emit(
            SessionStarted,
            question=request.question,
            trace_id=request.trace_id,
            suite=request.suite,
            case_ids=request.case_ids,
            model=self.ollie.model,
            transcript_path=str(self.path),
        )
        text = opening_message(request.question, request.trace_id, request.suite, request.case_ids)
        self._append("user", [{"type": "text", "text": text}])

    def _append(self, role: str, content: list[dict[str, Any]]) -> None:
        self.messages.append({"role": role, "content": content})
        self.transcript.write("message", turn=self.turns, role=role, content=content)

    async def _finish(self, status: SessionStatus, detail: str) -> None:
        self.transcript.write(
            "session_stopped",
            status=status.value,
            detail=detail,
            turns=self.turns,
            usage=self.usage.model_dump(),
            cost_usd_estimate=self.cost,
            cost_note=COST_NOTE,
            final_answer=self.final_answer,
        )
        self.transcript.close()
        await self.emitter.emit(
            SessionStopped,
            status=status,
            detail=detail,
            turns=self.turns,
            usage=self.usage,
            cost_usd_estimate=self.cost,
        )

    async def _loop(self) -> tuple[SessionStatus, str]:
        limits = self.limits
        continuations = 0
        while self.turns < limits.max_turns:
            self.turns += 1
            await self.emitter.emit(TurnStarted, turn=self.turns)
            response = await self.ollie.client.messages.create(
                model=self.ollie.model,
                max_tokens=limits.max_output_tokens,
                system=[
                    {"type": "text", "text": SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}}
                ],
                tools=tool_definitions_for_request(),
                messages=_with_cache_breakpoint(self.messages),
            )
            self._account(response)
            content = _content_params(response)
            text = "\n".join(b["text"] for b in content if b["type"] == "text").strip()
            stop = response.stop_reason

            if stop in ("end_turn", "stop_sequence") and text:
                self._append("assistant", content)
                self.final_answer = text
                await self.emitter.emit(FinalAnswer, text=text)
                return SessionStatus.COMPLETED, "final answer given"
            if stop == "max_tokens":
                kept = [b for b in content if b["type"] == "text" and b["text"].strip()]
                self._append("assistant", kept or [{"type": "text", "text": "(cut off)"}])
            elif stop not in ("end_turn", "stop_sequence"):
                self._append("assistant", content)
            if stop == "refusal":
                return SessionStatus.REFUSED, "the model refused" + (f": {text}" if text else "")
            if stop == "model_context_window_exceeded":
                return SessionStatus.CONTEXT_WINDOW, "the conversation outgrew the context window"
            if stop not in ("tool_use", "pause_turn", "max_tokens", "end_turn", "stop_sequence"):
                return SessionStatus.ERROR, f"unexpected stop_reason {stop!r}"
            self._check_budget()
            if stop == "tool_use":
                continuations = 0
                if text:
                    await self.emitter.emit(AssistantText, turn=self.turns, text=text)
                self._append("user", await self._run_tools(content))
            elif stop == "max_tokens":
                continuations = self._continue_or_stop(
                    continuations,
                    CUT_OFF_NOTE,
                    f"replies hit the {limits.max_output_tokens}-token output limit "
                    f"{continuations + 1} times in a row",
                    status=SessionStatus.MAX_TOKENS,
                )
            elif stop != "pause_turn":
                continuations = self._continue_or_stop(
                    continuations, EMPTY_REPLY_NOTE, "the model ended its turn without an answer"
                )
        return SessionStatus.MAX_TURNS, f"stopped after {limits.max_turns} turns"

    def _continue_or_stop(
        self,
        continuations: int,
        note: str,
        detail: str,
        status: SessionStatus = SessionStatus.ERROR,
    ) -> int:
        """Nudge the model once more, or stop when it has been nudged enough in a row."""
        if continuations >= self.limits.max_continuations:
            raise _Stop(status, detail)
        if self.messages[-1]["role"] == "user":
            self._append("assistant", [{"type": "text", "text": "(no reply)"}])
        self._append("user", [{"type": "text", "text": note}])
        return continuations + 1

    def _account(self, response: Any) -> None:
        usage = _usage(response)
        self.usage = self.usage + usage
        priced_model = response.model if price_for(response.model or "") else self.ollie.model
        cost = estimate_cost(priced_model, usage)
        self.cost = None if cost is None or self.cost is None else round(self.cost + cost, 6)
        self.transcript.write(
            "usage",
            turn=self.turns,
            stop_reason=response.stop_reason,
            model=response.model,
            usage=usage.model_dump(),
            cost_usd_estimate=cost,
        )

    def _check_budget(self) -> None:
        if self.usage.total >= self.limits.token_budget:
            raise _Stop(
                SessionStatus.TOKEN_BUDGET,
                f"token budget of {self.limits.token_budget:,} spent ({self.usage.total:,} used)",
            )

    async def _run_tools(self, content: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run each tool call in order (proposals wait for the user, so never in parallel)."""
        results: list[dict[str, Any]] = []
        for block in content:
            if block["type"] != "tool_use":
                continue
            tool_input = block["input"] if isinstance(block["input"], dict) else {}
            await self.emitter.emit(
                ToolCalled,
                turn=self.turns,
                tool_use_id=block["id"],
                name=block["name"],
                input=tool_input,
            )
            started = time.monotonic()
            outcome = await self.tools.call(block["name"], tool_input)
            self.transcript.write(
                "tool",
                turn=self.turns,
                tool_use_id=block["id"],
                name=block["name"],
                input=tool_input,
                is_error=outcome.is_error,
                content=outcome.content,
                duration_s=round(time.monotonic() - started, 3),
            )
            await self.emitter.emit(
                ToolResulted,
                turn=self.turns,
                tool_use_id=block["id"],
                name=block["name"],
                is_error=outcome.is_error,
                error_code=outcome.error_code,
                preview=outcome.content[:PREVIEW_CHARS],
            )
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": block["id"],
                "content": outcome.content,
            }
            if outcome.is_error:
                result["is_error"] = True
            results.append(result)
        return results
