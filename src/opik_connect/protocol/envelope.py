"""The Frame every websocket message is, and the canonical JSON both sides sign."""

from __future__ import annotations

import json
from json.encoder import c_encode_basestring, c_make_encoder  # type: ignore[attr-defined]
from typing import Any, Literal

from pydantic import Field
from pydantic_core import PydanticSerializationError, to_json

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
_spell_string = c_encode_basestring
LONG_TEXT_CHARS = 1024
"""A string this long (a file's text) is escaped by pydantic-core, 3-4x faster than json's."""


def canonical_json(value: Any) -> str:
    """One spelling per value, so both sides sign the same bytes."""
    if type(value) is dict and _holds_long_text(value):
        return "".join(_LONG_TEXT_ENCODER(value, 0))
    return "".join(_ENCODER(value, 0))


def json_string(text: str) -> str:
    """`text` as the canonical encoder spells it (the same characters), escaped by
    pydantic-core when long; a string it refuses (a lone surrogate) is spelled by json's."""
    if len(text) < LONG_TEXT_CHARS:
        return _spell_string(text)
    try:
        return to_json(text).decode()
    except PydanticSerializationError:
        return _spell_string(text)


def _holds_long_text(value: dict[str, Any]) -> bool:
    """A long string among the values, or the values of a dict among them (a command's
    result): where the faster spelling pays for its per-string call."""
    for item in value.values():
        kind = type(item)
        if kind is str and len(item) >= LONG_TEXT_CHARS:
            return True
        if kind is dict and any(
            type(inner) is str and len(inner) >= LONG_TEXT_CHARS for inner in item.values()
        ):
            return True
    return False


_ENCODER: Any = c_make_encoder(
    None, _CANONICAL.default, _spell_string, None, ":", ",", True, False, True
)
"""json's C encoder with _CANONICAL's options, as _CANONICAL.encode builds it on every call.
Built once: with no markers dict (no cycle check: a payload is a tree of JSON values) it keeps
no state between calls."""
_LONG_TEXT_ENCODER: Any = c_make_encoder(
    None, _CANONICAL.default, json_string, None, ":", ",", True, False, True
)
"""_ENCODER, but every string is spelled by json_string."""
