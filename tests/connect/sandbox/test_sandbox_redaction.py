"""Secret values are replaced by a placeholder, one test per kind; code stays readable."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opik_connect.connect.sandbox.secret_redaction import (
    might_contain_secret,
    private_key_open_at_end,
    redact,
)

PEM_BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw\n" * 3

SECRETS = [
    ("anthropic_key", 'ANTHROPIC = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345"', "AbCdEfGh"),
    ("openai_key", "OPENAI=sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123", "AbCdEfGh"),
    ("openai_key", "key sk-AbCdEfGhIjKlMnOpQrStUvWxYz0123 here", "AbCdEfGh"),
    ("aws_access_key", "aws_id AKIAIOSFODNN7EXAMPLE", "IOSFODNN7"),
    ("github_token", "gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghij"),
    ("github_token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrst", "11ABCDEFG"),
    ("slack_token", "slack xoxb-1234567890-abcdefghijkl", "1234567890"),
    ("google_api_key", "g AIzaSyA1234567890abcdefghijklmnopqrstuv", "SyA1234567890"),
    ("stripe_key", "stripe sk_live_abcdefghijklmnop1234", "abcdefghijklmnop"),
    ("jwt", "t eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N", "dozjg"),
    ("bearer_token", "Authorization: Bearer abcdefghijklmnop1234", "abcdefghijklmnop"),
    ("url_password", "DB=postgres://app:s3cretpass@db:5432/x", "s3cretpass"),
    ("secret_value", 'password = "hunter2"', "hunter2"),
    ("secret_value", "db_password: 'correct horse'", "correct horse"),
    ("secret_value", "secret: abc123xyz", "abc123xyz"),
    ("secret_value", "token=abcd1234efgh", "abcd1234efgh"),
    ("secret_value", 'OPIK_API_KEY="opik-key-value"', "opik-key-value"),
    ("secret_value", 'COMET_API_KEY = "comet-value"', "comet-value"),
    ("secret_value", '{"api_key": "zzz-json-value"}', "zzz-json-value"),
    ("secret_value", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalr"),
    (
        "private_key",
        f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}-----END RSA PRIVATE KEY-----",
        "MIIE",
    ),
    ("private_key", f"-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}", "MIIE"),
]


@pytest.mark.parametrize(("kind", "text", "secret"), SECRETS)
def test_each_kind_of_secret_is_redacted(kind: str, text: str, secret: str) -> None:
    out, count = redact(text)
    assert secret not in out
    assert f"[REDACTED:{kind}]" in out
    assert count >= 1


@pytest.mark.parametrize(
    "code",
    [
        "def handler(request):\n    return request\n",
        "token = make_token()\n",
        'api_key = os.environ["OPIK_API_KEY"]\n',
        'password: str = ""\n',
        "secret_count = 3\n",
        "tokens_used: int\n",
    ],
)
def test_ordinary_code_is_left_alone(code: str) -> None:
    assert redact(code) == (code, 0)


def test_text_around_a_key_block_survives_and_count_is_per_secret() -> None:
    text = (
        "before\n-----BEGIN PRIVATE KEY-----\n"
        + PEM_BODY
        + "-----END PRIVATE KEY-----\nafter\npassword = 'x1'\n"
    )
    out, count = redact(text)
    assert out == "before\n[REDACTED:private_key]\nafter\npassword = '[REDACTED:secret_value]'\n"
    assert count == 2


def test_window_starting_inside_a_key_block_is_redacted_up_to_its_end() -> None:
    window = PEM_BODY + "-----END EC PRIVATE KEY-----\nvisible = 1\n"
    out, count = redact(window, inside_private_key=True)
    assert out == "[REDACTED:private_key]\nvisible = 1\n"
    assert count == 1


def test_window_entirely_inside_a_key_block_is_redacted_whole() -> None:
    out, _ = redact("short tail line\n", inside_private_key=True)
    assert out == "[REDACTED:private_key]"


def test_bare_base64_key_lines_are_redacted_without_armour() -> None:
    out, count = redact(PEM_BODY)
    assert "MIIE" not in out
    assert count == 3


def test_private_key_state_tracking() -> None:
    assert private_key_open_at_end(b"x\n-----BEGIN RSA PRIVATE KEY-----\nabc\n", False)
    assert not private_key_open_at_end(b"-----END RSA PRIVATE KEY-----\n", True)
    assert private_key_open_at_end(b"no markers", True)


@pytest.mark.parametrize(("kind", "text", "secret"), SECRETS)
def test_fast_precheck_sees_every_secret_plain_and_json_escaped(
    kind: str, text: str, secret: str
) -> None:
    assert might_contain_secret(text)
    assert might_contain_secret(json.dumps(text))


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
        assert might_contain_secret(json.dumps(text))
