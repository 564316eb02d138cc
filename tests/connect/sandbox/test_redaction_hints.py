"""redact runs a pattern only when its own hint is in the line: the result must equal running
every pattern on every line."""

from __future__ import annotations

import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from opik_connect.connect.sandbox.linear_regex import compile_line_search
from opik_connect.connect.sandbox.search_scan import _redacted, secret_rule_lines
from opik_connect.connect.sandbox.secret_assignments import redact_assignments
from opik_connect.connect.sandbox.secret_redaction import (
    _PRIVATE_KEY,
    PROVIDER_KEYS,
    SECRET_CANDIDATE,
    _redact_key_blocks,
    redact,
    redact_lines,
)

FRAGMENTS = [
    "sk-ant-",
    "sk-proj-",
    "sk-",
    "AKIA",
    "ASIA",
    "A3T",
    "AIza",
    "ghp_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "hooks.slack.com/services/",
    "GOCSPX-",
    "sk_live_",
    "rk_test_",
    "hf_",
    "npm_",
    "pypi-AgE",
    "SG.",
    "AccountKey=",
    "accountkey=",
    "sig=",
    "abc1Q~",
    "abc\u0661Q~",
    "eyJ",
    ".eyJ",
    "Bearer ",
    "bearer ",
    "://",
    "user:",
    "@host",
    "password",
    "API_KEY",
    "token",
    "secret",
    "Auth",
    " = ",
    "=",
    ": ",
    '"',
    "'",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "A" * 64,
    "abcDEF0123456789xyz",
    "aB3" * 8,
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw",
    "[REDACTED:private_key]",
    "\n",
    " ",
    "x1",
]


def redact_with_every_pattern(lines: list[str], inside: bool) -> tuple[list[str], int, bool]:
    """The rules without any hint: every pattern on every line outside a key block."""
    out = list(lines)
    count, inside = _redact_key_blocks(out, inside)
    for i, line in enumerate(out):
        if line == _PRIVATE_KEY:
            continue
        for kind, pattern in PROVIDER_KEYS:
            line, n = pattern.subn(f"[REDACTED:{kind}]", line)
            count += n
        line, n = redact_assignments(line)
        out[i] = line
        count += n
    return out, count, inside


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30), st.booleans())
def test_hinted_redact_equals_every_pattern(parts: list[str], inside: bool) -> None:
    lines = "".join(parts).split("\n")
    assert redact_lines(lines, inside_private_key=inside) == redact_with_every_pattern(
        lines, inside
    )


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30), st.booleans())
def test_whole_text_redact_equals_every_pattern(parts: list[str], inside: bool) -> None:
    """redact() looks only at the lines the hint finds in the whole text (no key marker)."""
    text = "".join(parts)
    lines = text.split("\n")
    ending = [lines.pop()] if text.endswith("\n") else []
    redacted, count, _ = redact_with_every_pattern(lines, inside)
    assert redact(text, inside_private_key=inside) == ("\n".join(redacted + ending), count)


def test_a_line_holding_a_newline_is_redacted_as_given() -> None:
    """redact_lines takes lines as given, even one that holds a newline."""
    lines = ["x = 1", "a\npassword = 'hunter2hunter2'", "AKIAIOSFODNN7EXAMPLE"]
    assert redact_lines(lines) == redact_with_every_pattern(lines, False)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30))
def test_secret_candidate_finds_every_changed_text(parts: list[str]) -> None:
    """Search takes a file where SECRET_CANDIDATE finds nothing as its own redacted view."""
    text = "".join(parts)
    redacted, _ = redact(text)
    if redacted != text:
        assert compile_line_search(SECRET_CANDIDATE).search(text.encode()) is not None


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30))
def test_search_redaction_equals_whole_text_redaction(parts: list[str]) -> None:
    """Search redacts only the lines SECRET_CANDIDATE finds when there is no key marker."""
    text = "".join(parts)
    whole = "\n".join(redact_lines(text.split("\n"))[0]).encode()
    stop = threading.Event()
    assert _redacted(text.encode(), secret_rule_lines(), stop, float("inf")) == whole


@settings(max_examples=600, deadline=None)
@given(
    st.lists(
        st.sampled_from([*FRAGMENTS, "\r", "\t", "http://", "u:pw123@", "KEY: ", "é"]),
        max_size=30,
    )
)
def test_whole_text_redact_with_line_ends_and_urls_equals_every_pattern(parts: list[str]) -> None:
    """redact() skips hinted lines SECRET_CANDIDATE does not find (a URL without a password):
    it still changes exactly what every pattern on every line changes, CRLF text included."""
    text = "".join(parts)
    lines = text.split("\n")
    ending = [lines.pop()] if text.endswith("\n") else []
    redacted, count, _ = redact_with_every_pattern(lines, False)
    assert redact(text) == ("\n".join(redacted + ending), count)
