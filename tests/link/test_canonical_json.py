"""canonical_json's faster spelling of long text is the canonical spelling, character for
character: both ends sign these bytes."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from opik_connect.protocol import canonical_json
from opik_connect.protocol.envelope import LONG_TEXT_CHARS, json_string

REFERENCE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
ANY_CHARACTER = st.characters(blacklist_categories=())
"""Control characters, non-ASCII and lone surrogates included."""


def long(piece: str) -> str:
    return piece * (LONG_TEXT_CHARS // max(len(piece), 1) + 1) if piece else "x" * LONG_TEXT_CHARS


@settings(max_examples=400, deadline=None)
@given(st.text(ANY_CHARACTER, max_size=40))
def test_a_long_string_is_spelled_as_json_spells_it(piece: str) -> None:
    text = long(piece)
    assert json_string(text) == REFERENCE.encode(text)
    assert json_string(piece) == REFERENCE.encode(piece)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(ANY_CHARACTER, max_size=8),
    st.text(ANY_CHARACTER, max_size=8).map(long),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(ANY_CHARACTER, max_size=6), values, max_size=5))
def test_a_payload_holding_long_text_is_spelled_canonically(payload: dict) -> None:
    assert canonical_json(payload) == REFERENCE.encode(payload)


def test_a_read_result_takes_the_fast_spelling_and_the_same_text() -> None:
    result = {"content": long('def f():\n\treturn "\\x00"\n'), "total_lines": 3, "truncated": False}
    payload = {"ok": True, "result": result, "error": None}
    assert canonical_json(payload) == REFERENCE.encode(payload)
    assert json.loads(canonical_json(payload)) == payload


@settings(max_examples=400, deadline=None)
@given(st.one_of(values, st.floats(), st.lists(st.floats(), max_size=3)))
def test_any_value_is_spelled_as_json_spells_it(value: object) -> None:
    """The prebuilt encoder keeps json's options for every value, NaN and infinities too."""
    assert canonical_json(value) == REFERENCE.encode(value)
