"""What leaves through proposals (closest quotes, diffs) is redacted on content, not decoration."""

from __future__ import annotations

from secret_samples import PEM_BODY, PEM_LINE

from opik_connect.connect.proposals.match_errors import not_found
from opik_connect.connect.sandbox.outbound_redaction import redact_diff

KEY_FILE = (
    "import os\n\nKEY = '''\n-----BEGIN RSA PRIVATE KEY-----\n"
    + PEM_BODY
    + "-----END RSA PRIVATE KEY-----\n'''\nAWS = 'AKIAIOSFODNN7EXAMPLE'\n"
)


def test_the_closest_quote_is_redacted_before_its_gutter() -> None:
    error = not_found("k.py", KEY_FILE, PEM_LINE + "\n" + PEM_LINE + "\nZm9vYmFy7Q==\n", 0)
    quoted = error.details["closest"]
    assert "MIIE" not in quoted
    assert "Zm9vYmFy" not in quoted
    assert "|" in quoted


def test_the_closest_region_is_chosen_on_the_redacted_text() -> None:
    """Otherwise the quoted line number says how close a guess came to the key."""
    other = KEY_FILE.replace("AKIAIOSFODNN7EXAMPLE", "AKIAZZZZZZZZZZZZZZZZ")
    guess = "AWS = 'AKIAIOSFODNN7EXAMPLE'"
    first, second = not_found("k.py", KEY_FILE, guess, 0), not_found("k.py", other, guess, 0)
    assert (str(first), first.details) == (str(second), second.details)


def test_a_diff_loses_key_lines_behind_its_prefixes_and_the_short_last_line() -> None:
    body = PEM_BODY.splitlines()
    diff = "\n".join(
        [
            "--- a/settings.py",
            "+++ b/settings.py",
            "@@ -3,8 +3,8 @@",
            *[f" {line}" for line in body[1:]],
            " -----END RSA PRIVATE KEY-----",
            "-token = 'abc123def456'",
            "+token = 'zzz999yyy888'",
            " plain = 1",
        ]
    )
    out = redact_diff(diff)
    for leaked in ("MIIE", "Zm9vYmFy", "abc123def456", "zzz999yyy888"):
        assert leaked not in out
    assert " plain = 1" in out
    assert out.count("\n") == diff.count("\n")
    assert out.startswith("--- a/settings.py\n+++ b/settings.py\n@@ -3,8 +3,8 @@\n")
