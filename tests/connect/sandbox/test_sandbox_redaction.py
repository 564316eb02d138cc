"""Secret values are replaced by a placeholder, one test per kind; code stays readable."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from secret_samples import NOT_SECRETS, PEM_BODY, PEM_LINE, SECRETS

from opik_connect.connect.sandbox.secret_redaction import (
    might_contain_secret,
    private_key_open_at_end,
    redact,
)


@pytest.mark.parametrize(("kind", "text", "secret"), SECRETS)
def test_each_kind_of_secret_is_redacted(kind: str, text: str, secret: str) -> None:
    out, count = redact(text)
    assert secret not in out
    assert f"[REDACTED:{kind}]" in out
    assert count >= 1


@pytest.mark.parametrize("code", NOT_SECRETS)
def test_ordinary_code_and_digests_are_left_alone(code: str) -> None:
    assert redact(code) == (code, 0)


K = "[REDACTED:private_key]"


def test_key_blocks_are_blanked_line_by_line_and_counted_once() -> None:
    text = (
        "before\n-----BEGIN PRIVATE KEY-----\n"
        + PEM_BODY
        + "-----END PRIVATE KEY-----\nafter\npassword = 'x1'\n"
    )
    out, count = redact(text)
    assert out == ("before\n" + f"{K}\n" * 6 + "after\npassword = '[REDACTED:secret_value]'\n")
    assert count == 2


def test_window_starting_inside_a_key_block_is_redacted_up_to_its_end() -> None:
    window = PEM_BODY + "-----END EC PRIVATE KEY-----\nvisible = 1\n"
    out, count = redact(window, inside_private_key=True)
    assert out == f"{K}\n" * 5 + "visible = 1\n"
    assert count == 1


def test_window_entirely_inside_a_key_block_is_redacted_whole() -> None:
    out, _ = redact("short tail line\n", inside_private_key=True)
    assert out == f"{K}\n"


def test_a_window_that_shows_only_the_end_loses_every_body_line_before_it() -> None:
    """Context that starts mid-block: the short last line is key material too."""
    window = "x = 1\n" + PEM_BODY + "-----END RSA PRIVATE KEY-----\ny = 2\n"
    out, _ = redact(window)
    assert out == "x = 1\n" + f"{K}\n" * 5 + "y = 2\n"


def test_bare_base64_key_lines_are_redacted_without_armour() -> None:
    out, count = redact(f"{PEM_LINE}\n" * 3)
    assert "MIIE" not in out
    assert count == 3


def test_redaction_never_changes_the_number_of_lines() -> None:
    text = "\n".join(t for _, t, _ in SECRETS) + "\n"
    assert redact(text)[0].count("\n") == text.count("\n")


def test_private_key_state_tracking() -> None:
    assert private_key_open_at_end(b"x\n-----BEGIN RSA PRIVATE KEY-----\nabc\n", False)
    assert not private_key_open_at_end(b"-----END RSA PRIVATE KEY-----\n", True)
    assert private_key_open_at_end(b"no markers", True)


@pytest.mark.parametrize(("kind", "text", "secret"), SECRETS)
def test_fast_precheck_sees_every_secret(kind: str, text: str, secret: str) -> None:
    assert might_contain_secret(text)


FRAGMENTS = st.sampled_from(
    [s for _, s, _ in SECRETS]
    + [
        "x",
        " ",
        "=",
        ":",
        '"',
        "'",
        "\n",
        "\t",
        "token",
        "key",
        "sk",
        "-",
        "_",
        "def f():",
        "a1b2c3",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(FRAGMENTS, max_size=8).map("".join))
def test_precheck_is_a_necessary_condition_for_redaction(text: str) -> None:
    if redact(text)[1]:
        assert might_contain_secret(text)
