"""Asking Ollie (client -> platform, on the platform's /v1/ask websocket)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from opik_connect.protocol.codes import Strict


class AskRequest(Strict):
    """The first message on /v1/ask: what to ask and with which context."""

    question: str = Field(min_length=1, max_length=20_000)
    trace_id: str | None = None
    suite: str | None = None
    case_ids: list[str] = Field(default_factory=list)
    runner: str | None = Field(None, description="Runner id or name; None = the only one.")


class AskEvent(Strict):
    """Platform -> client, one per message: a session's progress. The last one has type
    'result' (data: the session record) or 'error' (data: an ErrorBody)."""

    session_id: str | None
    seq: int
    type: str
    data: dict[str, Any] = Field(default_factory=dict)
