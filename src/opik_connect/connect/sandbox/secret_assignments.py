"""Find `name = value` assignments whose name says secret, and blank their values.

The name decides whether a value may be a secret (`password`, `API_KEY`; not `max_tokens`), and
the value whether it is one (not a number, a plain identifier, a path or `None`). Every pattern
is bounded, so no line can make the search backtrack for long.
"""

from __future__ import annotations

import re

ASSIGNMENT = re.compile(
    r"""(?<![A-Za-z0-9_.\-])(?P<name>[A-Za-z_][A-Za-z0-9_.\-]{0,80})["']?[ \t]*(?::=|=|:)[ \t]*
    (?:(?P<q>["'`])(?P<quoted>[^"'`\n]{1,1000})(?P=q)
      |(?P<bare>[^\s"'`,;()\[\]{}<>]{1,1000})(?=[\s,;)\]}]|$))""",
    re.VERBOSE,
)
"""`name = value`, `name: value`, `"name": "value"`; the name and the value decide after."""
_SECRET_NAME = re.compile(
    r"password|passwd|passphrase|pwd|secret|token|credential|api[_\-]?key|access[_\-]?key"
    r"|private[_\-]?key|key[_\-]data|account[_\-]?key|auth[_\-]?key|\Aauths?\Z"
)
_ENV_KEY = re.compile(r"[A-Z0-9_]*(?:KEY|SECRET|TOKEN|PASSWORD|PASSWD|PWD|PASSPHRASE|AUTH)\Z")
_WORDS = re.compile(r"[a-z_.:\-]+|[A-Z_.:\-]+")
"""A value that is one plain identifier (`"_hypothesis_stats"`) is a name, not a key."""
_IDENTIFIER = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|/[\w/.\-]*")
"""A snake_case or CONSTANT_CASE name or an absolute path: what the value is called, not it."""
_TOKEN_MEASURE = re.compile(
    r"cost|price|per_token|tokens?_(?:count|limit|budget|usage)|(?:max|min|num|total)_\w*tokens"
)
"""A name whose only secret word is `token` and that counts or prices tokens (`max_tokens`,
`input_cost_per_token`): model configuration, not a credential."""
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
"""A bare number (`1.5e-06` has a letter and digits, but is not a key)."""
_ANNOTATED = re.compile(r"[ \t]*=(?!=)")
"""After `name: "..."`: the string was a Python annotation (`x: "Type | None" = None`)."""
_NOT_VALUES = frozenset({"true", "false", "none", "null", "nil", "undefined", "yes", "no"})


def _is_secret_value(name: str, value: str, quoted: bool) -> bool:
    """Whether `value`, assigned to `name` (in quotes or bare), is a secret to blank."""
    low = name.lower()
    env_style = _ENV_KEY.search(name) is not None and name.upper() == name
    words = set(_SECRET_NAME.findall(low))
    if not env_style and not words:
        return False
    if words == {"token"} and _TOKEN_MEASURE.search(low) is not None:
        return False
    if value.startswith("[REDACTED:") or value.lower() in _NOT_VALUES:
        return False
    if not any(c.isalnum() for c in value) or _IDENTIFIER.fullmatch(value):
        return False
    if not quoted and _NUMBER.fullmatch(value):
        return False
    if low.endswith("key") and not any(s in low for s in ("secret", "private", "api", "access")):
        return len(value) >= 8 and _WORDS.fullmatch(value) is None
    if quoted:
        return True
    if env_style:
        return not (value.isdigit() and len(value) <= 5)
    has_letter = any(c.isalpha() for c in value)
    return len(value) >= 6 and has_letter and any(c.isdigit() for c in value)


def redact_assignments(line: str) -> tuple[str, int]:
    """Every secret assignment in the line; a value that is not a secret is searched too (it
    may hold one: `args: password = "x"`), so the scan resumes right after each name."""
    pieces: list[str] = []
    count = 0
    done = pos = 0
    while (match := ASSIGNMENT.search(line, pos)) is not None:
        group = "quoted" if match.group("quoted") is not None else "bare"
        annotation = group == "quoted" and _ANNOTATED.match(line, match.end()) is not None
        if annotation or not _is_secret_value(
            match.group("name"), match.group(group), group == "quoted"
        ):
            pos = match.end("name")
            continue
        start, end = match.span(group)
        pieces += [line[done:start], "[REDACTED:secret_value]"]
        done = pos = end
        count += 1
    return "".join([*pieces, line[done:]]), count
