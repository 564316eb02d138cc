"""One session's record: the JSONL transcript (written every step), its events, tokens and cost.

Every message, usage figure and tool call is written to the transcript as it happens, so a
session that crashes or is killed leaves its trajectory up to that point.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from opik_connect.agent.ollie.events import (
    EventSink,
    SessionEmitter,
    SessionEvent,
    SessionStarted,
    SessionStatus,
    SessionStopped,
    TokenUsage,
)
from opik_connect.agent.ollie.model_client import ModelReply
from opik_connect.agent.ollie.model_prices import estimate_cost, price_for
from opik_connect.agent.ollie.session_request import ASKED_FIELDS, OllieLimits, OllieRequest
from opik_connect.agent.ollie.transcript import COST_NOTE, TranscriptWriter, transcript_path

TRANSCRIPT_EVENTS = {"proposal_sent", "decision_received", "suite_ran"}


class SessionLog:
    """Writes the transcript, emits the session's events, and adds up tokens and cost."""

    def __init__(
        self,
        session_id: str,
        *,
        model: str,
        transcript_dir: Path | None,
        on_event: EventSink | None,
    ) -> None:
        self.session_id = session_id
        self.model = model
        self.path = transcript_path(session_id, transcript_dir)
        self.transcript = TranscriptWriter(self.path)
        self._on_event = on_event
        self.emitter = SessionEmitter(session_id, self._sink)
        self.usage = TokenUsage()
        self.cost: float | None = 0.0

    async def _sink(self, event: SessionEvent) -> None:
        if event.type in TRANSCRIPT_EVENTS:
            self.transcript.write("event", event=event.model_dump(mode="json"))
        if self._on_event is not None:
            await self._on_event(event)

    async def started(self, request: OllieRequest, limits: OllieLimits) -> None:
        asked = request.model_dump(include=ASKED_FIELDS)
        self.transcript.write(
            "session_started",
            session_id=self.session_id,
            model=self.model,
            **asked,
            limits=limits.model_dump(),
            at=time.time(),
        )
        await self.emitter.emit(
            SessionStarted, **asked, model=self.model, transcript_path=str(self.path)
        )

    def message(self, turn: int, role: str, content: list[dict[str, Any]]) -> None:
        self.transcript.write("message", turn=turn, role=role, content=content)

    def reply(self, turn: int, reply: ModelReply) -> None:
        """Add the reply's tokens and estimated cost to the session's."""
        self.usage = self.usage + reply.usage
        priced_model = reply.model if price_for(reply.model or "") else self.model
        cost = estimate_cost(priced_model, reply.usage)
        self.cost = None if cost is None or self.cost is None else round(self.cost + cost, 6)
        self.transcript.write(
            "usage",
            turn=turn,
            stop_reason=reply.stop_reason,
            model=reply.model,
            usage=reply.usage.model_dump(),
            cost_usd_estimate=cost,
        )

    def tool(self, **fields: Any) -> None:
        self.transcript.write("tool", **fields)

    async def stopped(
        self, status: SessionStatus, detail: str, turns: int, final_answer: str | None
    ) -> None:
        self.transcript.write(
            "session_stopped",
            status=status.value,
            detail=detail,
            turns=turns,
            usage=self.usage.model_dump(),
            cost_usd_estimate=self.cost,
            cost_note=COST_NOTE,
            final_answer=final_answer,
        )
        self.transcript.close()
        await self.emitter.emit(
            SessionStopped,
            status=status,
            detail=detail,
            turns=turns,
            usage=self.usage,
            cost_usd_estimate=self.cost,
        )
