"""redact runs a pattern only when its hint is present: the result must equal running them all."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from opik_connect.connect.sandbox.secret_redaction import (
    _KEY_BODY_LINE,
    _LEADING_KEY_TAIL,
    ASSIGNMENT,
    PRIVATE_KEY_BLOCK,
    PROVIDER_KEYS,
    redact,
)

FRAGMENTS = [
    "sk-ant-",
    "sk-proj-",
    "AKIA",
    "AIza",
    "ghp_",
    "github_pat_",
    "xoxb-",
    "sk_live_",
    "eyJ",
    ".eyJ",
    "Bearer ",
    "://",
    "user:",
    "@host",
    "password",
    "API_KEY",
    "token",
    "secret",
    " = ",
    ": ",
    '"',
    "'",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "A" * 64,
    "abcDEF0123456789xyz",
    "\n",
    " ",
    "x1",
]


def redact_with_every_pattern(text: str, inside_private_key: bool) -> tuple[str, int]:
    """The rules as they were before the per-pattern hints: every pattern, every time."""
    count = 0

    def sub(kind: str, pattern: re.Pattern[str], value: str) -> str:
        nonlocal count
        value, n = pattern.subn(f"[REDACTED:{kind}]", value)
        count += n
        return value

    if inside_private_key:
        text = sub("private_key", _LEADING_KEY_TAIL, text)
    text = sub("private_key", PRIVATE_KEY_BLOCK, text)
    text = sub("private_key", _KEY_BODY_LINE, text)
    for kind, pattern in PROVIDER_KEYS:
        text = sub(kind, pattern, text)

    def assignment(match: re.Match[str]) -> str:
        nonlocal count
        value = match.group("quoted") or match.group("bare")
        if value.startswith("[REDACTED:"):
            return match.group(0)
        count += 1
        start, end = match.span("quoted") if match.group("quoted") else match.span("bare")
        whole, base = match.group(0), match.start()
        return whole[: start - base] + "[REDACTED:secret_value]" + whole[end - base :]

    return ASSIGNMENT.sub(assignment, text), count


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30), st.booleans())
def test_hinted_redact_equals_every_pattern(parts: list[str], inside: bool) -> None:
    text = "".join(parts)
    assert redact(text, inside_private_key=inside) == redact_with_every_pattern(text, inside)
