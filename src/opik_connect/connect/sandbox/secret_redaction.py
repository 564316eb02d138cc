"""Replace secret values with `[REDACTED:<kind>]` before any file text leaves the machine.

Detection is by shape: provider key prefixes (after the gitleaks / detect-secrets rule lists),
private-key armour tracked from BEGIN to END, and `name = value` assignments whose name says
secret. Redaction never adds or removes a line, so line numbers stay those of the file. Every
pattern is bounded, so no file content can make redaction backtrack for long.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from opik_connect.connect.sandbox.linear_regex import (
    OWN_PATTERN_BYTES,
    LinearRegex,
    compile_line_search,
    compile_linear,
    match_start,
)
from opik_connect.connect.sandbox.secret_assignments import redact_assignments

PROVIDER_KEYS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("anthropic_key", re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{16,}")),
    ("openai_key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}")),
    (
        "aws_access_key",
        re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|A3T[A-Z0-9])[0-9A-Z]{16}\b"),
    ),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("gitlab_token", re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}")),
    ("slack_token", re.compile(r"\bxox[abposre]-[A-Za-z0-9\-]{10,}")),
    ("slack_webhook", re.compile(r"hooks\.slack\.com/services/[A-Za-z0-9/_\-]{20,}")),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}")),
    ("google_oauth_secret", re.compile(r"\bGOCSPX-[A-Za-z0-9_\-]{20,}")),
    ("stripe_key", re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}")),
    ("huggingface_token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("npm_token", re.compile(r"\bnpm_[A-Za-z0-9]{36}")),
    ("pypi_token", re.compile(r"\bpypi-AgE[A-Za-z0-9_\-]{50,}")),
    ("sendgrid_key", re.compile(r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}")),
    ("azure_storage_key", re.compile(r"(?i:AccountKey)=[A-Za-z0-9+/]{80,}={0,2}")),
    ("azure_sas_signature", re.compile(r"\bsig=[A-Za-z0-9%+/]{40,}={0,2}")),
    ("azure_client_secret", re.compile(r"\b[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")),
    ("bearer_token", re.compile(r"(?<=[Bb]earer )[A-Za-z0-9\-._~+/]{16,}=*")),
    ("url_password", re.compile(r"(?<=://)[^/\s:@]{1,256}:[^/\s@]{3,256}(?=@)")),
)

_STEMS = r"pass|pwd|secret|token|key|auth|credential"
_STEM_WORDS = tuple(_STEMS.split("|"))
"""Every name an assignment is redacted under holds one (see secret_assignments): a
line whose lower case holds none has no assignment to redact, and no RE2 call is made."""
_NAME_HINT_SOURCE = rf"(?i:(?:{_STEMS})[A-Za-z0-9_.\-]{{0,80}}[\"']?[ \t]*(?::=|=|:))"
"""A secret name (every one holds a stem) followed by a separator: without it, no assignment
is redacted."""
_HINT_SOURCE = (
    rf"{_NAME_HINT_SOURCE[:-1]}"
    r"|sk-|sk_|rk_|pk_|akia|asia|agpa|aida|aroa|anpa|anva|aipa|a3t|gh[pousr]_|github_pat_"
    r"|glpat-|xox|hooks\.slack|aiza|gocspx-|hf_|npm_|pypi-|sg\.|accountkey|sig=|q~|eyj"
    r"|bearer |://|private key)"
    r"|[A-Za-z0-9+/]{60}"
)
SECRET_HINT = _HINT_SOURCE
"""A regex (in the syntax both Python and ripgrep read) that matches somewhere in any text that
`redact` would change: text without a match is returned as it is."""
_KIND_HINTS: dict[str, str | re.Pattern[str]] = {
    "anthropic_key": "sk-ant-",
    "openai_key": "sk-",
    "aws_access_key": re.compile(r"A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA|3T)"),
    "github_token": re.compile(r"gh[pousr]_|github_pat_"),
    "gitlab_token": "glpat-",
    "slack_token": "xox",
    "slack_webhook": "hooks.slack.com/services/",
    "google_api_key": "AIza",
    "google_oauth_secret": "GOCSPX-",
    "stripe_key": re.compile(r"k_(?:live|test)_"),
    "huggingface_token": "hf_",
    "npm_token": "npm_",
    "pypi_token": "pypi-AgE",
    "sendgrid_key": "SG.",
    "azure_storage_key": re.compile(r"(?i:accountkey)="),
    "azure_sas_signature": "sig=",
    "azure_client_secret": "Q~",
    "jwt": "eyJ",
    "bearer_token": "earer ",
    "url_password": "://",
}
"""Each provider pattern's own necessary literal: a line that trips the shared hint (a URL, an
assignment) runs only the patterns whose literal it holds. A kind without an entry always runs."""
_PROVIDER_RULES = tuple(
    (pattern, f"[REDACTED:{kind}]", _KIND_HINTS.get(kind)) for kind, pattern in PROVIDER_KEYS
)
"""PROVIDER_KEYS with each one's replacement and literal, built once for the per-line loop."""

_KEY_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_KEY_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_KEY_MARKER_BYTES = re.compile(rb"-----(BEGIN|END) [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_KEY_BODY = re.compile(r"[ \t]*[A-Za-z0-9+/]{1,80}={0,2}[ \t\r]*")
_KEY_BODY_LINE = re.compile(r"[ \t]*([A-Za-z0-9+/]{60,80}={0,2})[ \t\r]*")
_HEX = re.compile(r"[0-9a-fA-F]+")
_PRIVATE_KEY = "[REDACTED:private_key]"

_VALUE_AFTER = r"""["']?[ \t]*(?::=|=|:)[ \t]*(?:["'`][^"'`\n]|[^\s"'`,;()\[\]{}<>])"""
_RULE_SOURCES = (
    *(
        p.pattern.replace(r"\b", "")
        .replace(r"\d", r"\p{Nd}")
        .replace("(?<=", "(?:")
        .replace("(?=", "(?:")
        for _, p in PROVIDER_KEYS
    ),
    r"(?i:passw(?:or)?d|passphrase|pwd|secret|token|credential|(?:api|access|private|account"
    rf"|auth)[_\-]?key|key[_\-]data)[A-Za-z0-9_.\-]{{0,80}}{_VALUE_AFTER}",
    rf"(?i:auths?){_VALUE_AFTER}",
    rf"(?:KEY|SECRET|TOKEN|PASSWORD|PASSWD|PWD|PASSPHRASE|AUTH){_VALUE_AFTER}",
    r"-----(?:BEGIN|END) [A-Z0-9 ]{0,40}PRIVATE KEY",
    r"^[ \t]*[A-Za-z0-9+/]{60,80}={0,2}[ \t\r]*$",
)
SECRET_CANDIDATE = "|".join(_RULE_SOURCES)
"""A line regex (ripgrep and RE2 syntax) that matches in every file `redact_lines` changes,
much narrower than SECRET_HINT. The first change to a line is made by a rule that matches the
line as it is, and each alternative here is such a rule made wider: look-arounds become plain
text, word boundaries are dropped, a digit is any Unicode one (as in Python), an assignment
needs only a secret name (as secret_assignments reads it), a separator and a value's
first character, a key block has a BEGIN or END line, a key body line is bare base64. So a
file where it finds nothing reads the same redacted as raw; and in a file without key
markers, where redaction works line by line, so does a line."""

_Start = Callable[[bytes, int], int]
_Hints = tuple[LinearRegex, LinearRegex, LinearRegex, _Start, _Start]


def _hint_patterns() -> _Hints:
    """The hint for str and for bytes, the secret-name hint, where the hint starts, and where
    SECRET_CANDIDATE first matches, line by line (UTF-8): redaction leaves a text where it does
    not as it is, and in a text without key markers, such a line."""
    hint_bytes = compile_linear(_HINT_SOURCE, as_bytes=True, max_mem=OWN_PATTERN_BYTES)
    return (
        compile_linear(_HINT_SOURCE, max_mem=OWN_PATTERN_BYTES),
        hint_bytes,
        compile_linear(_NAME_HINT_SOURCE, as_bytes=True, max_mem=OWN_PATTERN_BYTES),
        match_start(hint_bytes),
        match_start(compile_line_search(SECRET_CANDIDATE, max_mem=OWN_PATTERN_BYTES)),
    )


_HINT, _HINT_BYTES, _NAME_HINT_BYTES, _HINT_START, _CANDIDATE_START = _hint_patterns()


def forget_hint_states() -> None:
    """Compile the hints afresh, so that the DFA states a pass over a whole tree grew in them
    (some 7 MB) go with that pass. A call under way keeps the patterns it started with."""
    global _HINT, _HINT_BYTES, _NAME_HINT_BYTES, _HINT_START, _CANDIDATE_START
    _HINT, _HINT_BYTES, _NAME_HINT_BYTES, _HINT_START, _CANDIDATE_START = _hint_patterns()


def might_contain_secret(text: str | bytes) -> bool:
    """A fast necessary condition for `redact` to change the text (RE2: one linear pass)."""
    if isinstance(text, str):
        try:
            text = text.encode()
        except UnicodeEncodeError:
            return _HINT.search(text) is not None
    return _HINT_BYTES.search(text) is not None


def _hinted_lines(raw: bytes, pos: int) -> list[int]:
    """The indexes of the lines of `raw` (split at b"\n"), from the one at `pos` on, where the
    hint and then SECRET_CANDIDATE match: one RE2 search per such line. No hint match spans a
    newline, and a match depends only on what follows its start: each line is searched alone."""
    found: list[int] = []
    line = raw.count(b"\n", 0, pos)
    while (start := _HINT_START(raw, pos)) >= 0:
        line += raw.count(b"\n", pos, start)
        end = raw.find(b"\n", start)
        if _CANDIDATE_START(raw[raw.rfind(b"\n", 0, start) + 1 : None if end < 0 else end], 0) >= 0:
            found.append(line)
        if end < 0:
            break
        pos, line = end + 1, line + 1
    return found


def has_key_marker(text: bytes) -> bool:
    """Whether a private-key BEGIN or END line is in `text`: without one, redaction is a
    function of each line alone."""
    return _KEY_MARKER_BYTES.search(text) is not None


def private_key_open_at_end(text: bytes | memoryview, open_before: bool) -> bool:
    """Whether a private-key block is still open after `text`, given the state before it."""
    state = open_before
    for marker in _KEY_MARKER_BYTES.finditer(text):
        state = marker.group(1) == b"BEGIN"
    return state


def _looks_like_key_body(line: str) -> bool:
    """A bare line of base64 as long as a PEM line, with the mixed alphabet of random bytes:
    a hex digest or an identifier is not one."""
    found = _KEY_BODY_LINE.fullmatch(line)
    if found is None:
        return False
    body = found.group(1)
    return (
        _HEX.fullmatch(body.rstrip("=")) is None
        and any(c.isupper() for c in body)
        and any(c.islower() for c in body)
        and any(c.isdigit() for c in body)
    )


def _redact_key_blocks(lines: list[str], inside: bool) -> tuple[int, bool]:
    """Blank private-key material in place, line by line, from BEGIN to END; a window that
    starts inside a block (or shows only its END) loses every body line before the END."""
    count = 1 if inside else 0
    for i, line in enumerate(lines):
        if inside:
            end = _KEY_END.search(line)
            if end is None:
                lines[i] = _PRIVATE_KEY
                continue
            line, inside = _PRIVATE_KEY + line[end.end() :], False
        begin = _KEY_BEGIN.search(line)
        end = _KEY_END.search(line)
        if end is not None and (begin is None or end.start() < begin.start()):
            count += 1
            line = _PRIVATE_KEY + line[end.end() :]
            back = i - 1
            while back >= 0 and lines[back] != _PRIVATE_KEY and _KEY_BODY.fullmatch(lines[back]):
                lines[back] = _PRIVATE_KEY
                back -= 1
            begin = _KEY_BEGIN.search(line)
        while begin is not None:
            count += 1
            rest = line[begin.end() :]
            end = _KEY_END.search(rest)
            if end is None:
                line, inside = line[: begin.start()] + _PRIVATE_KEY, True
                break
            line = line[: begin.start()] + _PRIVATE_KEY + rest[end.end() :]
            begin = _KEY_BEGIN.search(line, begin.start() + len(_PRIVATE_KEY))
        if not inside and _looks_like_key_body(line):
            count += 1
            line = _PRIVATE_KEY
        lines[i] = line
    return count, inside


def redact_lines(
    lines: list[str], *, inside_private_key: bool = False
) -> tuple[list[str], int, bool]:
    """`lines` (without line ends) with secret values replaced, one output line per input line;
    how many were replaced; whether a key block is still open after the last line.
    `inside_private_key` says the first line is inside a key block."""
    if not inside_private_key:
        fast = _redact_unmarked("\n".join(lines), lines)
        if fast is not None:
            return fast[0], fast[1], False
    out = list(lines)
    count, inside = _redact_key_blocks(out, inside_private_key)
    for i, line in enumerate(out):
        if line == _PRIVATE_KEY or not might_contain_secret(line):
            continue
        out[i], n = _redact_hinted_line(line)
        count += n
    return out, count, inside


def _redact_hinted_line(line: str) -> tuple[str, int]:
    """The provider patterns and the assignments, on one line the hint matched."""
    count = 0
    for pattern, replacement, hint in _PROVIDER_RULES:
        if hint is None or (hint in line if isinstance(hint, str) else hint.search(line)):
            line, n = pattern.subn(replacement, line)
            count += n
    lowered = line.lower()
    if any(stem in lowered for stem in _STEM_WORDS) and _NAME_HINT_BYTES.search(line.encode()):
        line, n = redact_assignments(line)
        count += n
    return line, count


def _redact_unmarked(text: str, lines: list[str] | None) -> tuple[list[str], int] | None:
    """Redaction of text with no key BEGIN or END line, where each line is redacted alone: only
    the lines the hint and SECRET_CANDIDATE match are looked at (a key body line holds 60
    base64 characters, so both match it too). `lines` is text.split("\n") if the caller has
    it. None when this does not apply (key markers, a line holding a newline, not UTF-8). What
    precedes the first line SECRET_CANDIDATE finds (all, if none) is left as it is."""
    try:
        raw = text.encode()
    except UnicodeEncodeError:
        return None
    if lines is not None and raw.count(b"\n") != len(lines) - 1:
        return None
    first = _CANDIDATE_START(raw, 0)
    if first < 0:
        return ([] if lines is None else list(lines)), 0
    start = raw.rfind(b"\n", 0, first) + 1
    if _KEY_MARKER_BYTES.search(raw, start) is not None:
        return None
    hinted = _hinted_lines(raw, start)
    if lines is None:
        if not hinted:
            return [], 0
        lines = text.split("\n")
    out = list(lines)
    count = 0
    for i in hinted:
        line = out[i]
        if line == _PRIVATE_KEY:
            continue
        if _looks_like_key_body(line):
            out[i] = _PRIVATE_KEY
            count += 1
            continue
        out[i], n = _redact_hinted_line(line)
        count += n
    return out, count


def redact(text: str, *, inside_private_key: bool = False) -> tuple[str, int]:
    """Return `text` with secret values replaced and how many were replaced.

    `inside_private_key` says the window starts inside a key block (the caller saw its BEGIN
    earlier): every line up to the END, or the whole window, is key material.
    """
    if not inside_private_key:
        fast = _redact_unmarked(text, None)
        if fast is not None:
            redacted, count = fast
            return ("\n".join(redacted), count) if count else (text, 0)
    lines = text.split("\n")
    ending = [lines.pop()] if text.endswith("\n") else []
    redacted, count, _ = redact_lines(lines, inside_private_key=inside_private_key)
    return "\n".join(redacted + ending), count
