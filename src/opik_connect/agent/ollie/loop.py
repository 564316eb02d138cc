"""Ollie: the tool-using loop over a Messages API model that turns a failing trace into a fix.

One `run_session` call is one session: it talks to the model until a final answer or a limit,
runs the tools the model asks for, reports progress as events and records a JSONL transcript.

Two kinds of failure: a tool that fails in any way goes back to the model as an `is_error`
tool_result (see tools.py); only the loop's own failures end a session: the model client giving
up after its retries, a limit, cancellation, or a bug in the loop itself.

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
from typing import Any

from opik_connect.agent.ollie.events import (
    AssistantText,
    EventSink,
    FinalAnswer,
    SessionResult,
    SessionStatus,
    ToolCalled,
    ToolResulted,
    TurnStarted,
)
from opik_connect.agent.ollie.model_client import AnthropicModelClient, ModelCallFailed, ModelClient
from opik_connect.agent.ollie.prompt import (
    CUT_OFF_NOTE,
    EMPTY_REPLY_NOTE,
    SYSTEM_PROMPT,
    opening_message,
)
from opik_connect.agent.ollie.session_log import SessionLog
from opik_connect.agent.ollie.session_request import MissingAPIKey, OllieLimits, OllieRequest
from opik_connect.agent.ollie.suite_cases import (
    LastResults,
    RunnerSuiteCases,
    StaticCases,
    TestCaseSource,
)
from opik_connect.agent.ollie.tool_base import SessionSubject
from opik_connect.agent.ollie.tool_registry import tool_definitions_for_request
from opik_connect.agent.ollie.tools import OllieTools
from opik_connect.agent.platform.runner_api import Runner
from opik_connect.agent.traces.store import TraceStore
from opik_connect.config import DEFAULT_MODEL, ProjectConfig

PREVIEW_CHARS = 500
TEXT_STOPS = ("end_turn", "stop_sequence")

log = logging.getLogger(__name__)


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
        client: ModelClient | None = None,
    ) -> None:
        self.model = model
        self.limits = limits or OllieLimits()
        self.transcript_dir = transcript_dir
        if client is None:
            key = api_key or os.environ.get("ANTHROPIC_API_KEY")
            if not key:
                raise MissingAPIKey()
            client = AnthropicModelClient(
                api_key=key,
                base_url=base_url or os.environ.get("ANTHROPIC_BASE_URL") or None,
                max_retries=max_retries,
                timeout_s=request_timeout_s,
            )
        self.client = client

    async def aclose(self) -> None:
        """Close the model client's connections."""
        await self.client.aclose()

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
            self,
            request,
            runner=runner,
            traces=traces,
            log=SessionLog(
                session_id or f"ses_{uuid.uuid4().hex[:16]}",
                model=self.model,
                transcript_dir=self.transcript_dir,
                on_event=on_event,
            ),
            limits=limits or self.limits,
        )
        return await session.run()


class _Session:
    """The state of one session; lives only inside run_session."""

    def __init__(
        self,
        ollie: Ollie,
        request: OllieRequest,
        *,
        runner: Runner,
        traces: TraceStore,
        log: SessionLog,
        limits: OllieLimits,
    ) -> None:
        self.ollie = ollie
        self.request = request
        self.limits = limits
        self.log = log
        self.emitter = log.emitter
        cases: TestCaseSource = (
            StaticCases(request.test_cases)
            if request.test_cases is not None
            else RunnerSuiteCases(runner)
        )
        self.tools = OllieTools(
            runner=runner,
            traces=traces,
            cases=cases,
            subject=SessionSubject(request.trace_id, request.suite, list(request.case_ids)),
            emitter=self.emitter,
            last_results=LastResults(request.last_runs),
            decision_timeout_s=limits.decision_timeout_s,
        )
        self.messages: list[dict[str, Any]] = []
        self.turns = 0
        self.final_answer: str | None = None

    async def run(self) -> SessionResult:
        status, detail = SessionStatus.ERROR, "session did not start"
        deadline = asyncio.timeout(self.limits.wall_time_s)
        try:
            async with deadline:
                await self.log.started(self.request, self.limits)
                request = self.request
                text = opening_message(
                    request.question, request.trace_id, request.suite, request.case_ids
                )
                self._append("user", [{"type": "text", "text": text}])
                status, detail = await self._loop()
        except _Stop as stop:
            status, detail = stop.status, stop.detail
        except ModelCallFailed as exc:
            status, detail = SessionStatus.ERROR, str(exc)
        except TimeoutError as exc:
            if deadline.expired():
                status = SessionStatus.WALL_TIME
                detail = f"wall time of {self.limits.wall_time_s:g}s reached"
            else:
                status, detail = SessionStatus.ERROR, f"internal error: {exc!r}"
        except asyncio.CancelledError:
            status, detail = SessionStatus.CANCELLED, "the session was cancelled"
            raise
        except Exception as exc:
            log.exception("Ollie session %s failed", self.log.session_id)
            status, detail = SessionStatus.ERROR, f"internal error: {exc!r}"
        finally:
            await self.log.stopped(status, detail, self.turns, self.final_answer)
        return SessionResult(
            session_id=self.log.session_id,
            status=status,
            detail=detail,
            final_answer=self.final_answer,
            turns=self.turns,
            usage=self.log.usage,
            cost_usd_estimate=self.log.cost,
            transcript_path=str(self.log.path),
            proposal_ids=list(self.tools.proposal_ids),
            decisions=dict(self.tools.decisions),
        )

    def _append(self, role: str, content: list[dict[str, Any]]) -> None:
        self.messages.append({"role": role, "content": content})
        self.log.message(self.turns, role, content)

    async def _loop(self) -> tuple[SessionStatus, str]:
        limits = self.limits
        continuations = 0
        while self.turns < limits.max_turns:
            self.turns += 1
            await self.emitter.emit(TurnStarted, turn=self.turns)
            reply = await self.ollie.client.create(
                model=self.ollie.model,
                max_tokens=limits.max_output_tokens,
                system=[
                    {"type": "text", "text": SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}}
                ],
                tools=tool_definitions_for_request(),
                messages=_with_cache_breakpoint(self.messages),
            )
            self.log.reply(self.turns, reply)
            content = reply.content
            text = "\n".join(b["text"] for b in content if b["type"] == "text").strip()
            stop = reply.stop_reason

            if stop in TEXT_STOPS and text:
                self._append("assistant", content)
                self.final_answer = text
                await self.emitter.emit(FinalAnswer, text=text)
                return SessionStatus.COMPLETED, "final answer given"
            if stop == "max_tokens":
                kept = [b for b in content if b["type"] == "text" and b["text"].strip()]
                self._append("assistant", kept or [{"type": "text", "text": "(cut off)"}])
            elif stop not in TEXT_STOPS:
                self._append("assistant", content)
            if stop == "refusal":
                return SessionStatus.REFUSED, "the model refused" + (f": {text}" if text else "")
            if stop == "model_context_window_exceeded":
                return SessionStatus.CONTEXT_WINDOW, "the conversation outgrew the context window"
            if stop not in ("tool_use", "pause_turn", "max_tokens", *TEXT_STOPS):
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

    def _check_budget(self) -> None:
        used = self.log.usage.total
        if used >= self.limits.token_budget:
            raise _Stop(
                SessionStatus.TOKEN_BUDGET,
                f"token budget of {self.limits.token_budget:,} spent ({used:,} used)",
            )

    async def _run_tools(self, content: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run each tool call in order (proposals wait for the user, so never in parallel)."""
        results: list[dict[str, Any]] = []
        for block in content:
            if block["type"] != "tool_use":
                continue
            tool_use_id, name = block["id"], block["name"]
            tool_input = block["input"] if isinstance(block["input"], dict) else {}
            await self.emitter.emit(
                ToolCalled, turn=self.turns, tool_use_id=tool_use_id, name=name, input=tool_input
            )
            started = time.monotonic()
            outcome = await self.tools.call(name, tool_input)
            self.log.tool(
                turn=self.turns,
                tool_use_id=tool_use_id,
                name=name,
                input=tool_input,
                is_error=outcome.is_error,
                content=outcome.content,
                duration_s=round(time.monotonic() - started, 3),
            )
            await self.emitter.emit(
                ToolResulted,
                turn=self.turns,
                tool_use_id=tool_use_id,
                name=name,
                is_error=outcome.is_error,
                error_code=outcome.error_code,
                preview=outcome.content[:PREVIEW_CHARS],
            )
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": tool_use_id,
                "content": outcome.content,
            }
            if outcome.is_error:
                result["is_error"] = True
            results.append(result)
        return results
