"""The Frame every websocket message is, and the canonical JSON both sides sign."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from opik_connect.protocol.codes import PROTOCOL_VERSION, Strict

FrameKind = Literal["control", "command", "result", "event", "ack", "error"]


class Frame(Strict):
    """Every websocket message is one Frame as JSON text."""

    v: int = PROTOCOL_VERSION
    kind: FrameKind
    type: str
    id: str
    seq: int = Field(0, ge=0)
    payload: dict[str, Any] = Field(default_factory=dict)
    sig: str | None = None


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""Built once: json.dumps with non-default options builds an encoder on every call."""


def canonical_json(value: Any) -> str:
    """One spelling per value, so both sides sign the same bytes."""
    return _CANONICAL.encode(value)
