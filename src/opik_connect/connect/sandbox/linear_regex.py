"""Every regex the platform supplies (a search pattern, a glob) is compiled for RE2, whose
matching time is linear in the text: no pattern can make the daemon backtrack."""

from __future__ import annotations

from collections.abc import Callable

import re2
from re2 import _re2

from opik_connect.protocol import BridgeError, ErrorCode

MAX_PROGRAM_BYTES = 32 << 20
"""RE2's memory budget per pattern; a larger program is refused as invalid, not built."""
OWN_PATTERN_BYTES = 8 << 20
"""RE2's budget for the daemon's own fixed patterns (the secret hints and rules), most of it
for DFA states that stay as long as the pattern: 32 MB let them grow by ~20 MB over a large
tree, 8 MB costs ~6% more time there."""

LinearRegex = re2._Regexp
_ANCHOR_BOTH = _re2.RE2.Anchor.ANCHOR_BOTH
_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
_NO_MATCH = (-1, -1)


def _options(max_mem: int, *, never_nl: bool = False) -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = max_mem
    options.never_nl = never_nl
    return options


def compile_linear(
    pattern: str,
    *,
    what: str = "regex",
    field: str = "pattern",
    as_bytes: bool = False,
    max_mem: int = MAX_PROGRAM_BYTES,
) -> LinearRegex:
    """The pattern compiled by RE2 (for str, or for UTF-8 bytes); a syntax it lacks
    (look-around, back-references) or a program too large is a named error (invalid_args)
    that depends on the pattern alone."""
    return _compile(pattern, _options(max_mem), what, field, encode=as_bytes)


def compile_line_search(pattern: str, *, max_mem: int = MAX_PROGRAM_BYTES) -> LinearRegex:
    """The pattern for searching whole UTF-8 texts (bytes) line by line in one pass: `^` and
    `$` at line ends, and no match ever spans a newline, as if each line were searched alone.
    A pattern RE2 refuses is search_failed, Opik's code for an invalid regex."""
    return _compile(
        "(?m)" + pattern,
        _options(max_mem, never_nl=True),
        "regex",
        "pattern",
        encode=True,
        code=ErrorCode.SEARCH_FAILED,
    )


def _compile(
    pattern: str,
    options: re2.Options,
    what: str,
    field: str,
    *,
    encode: bool = False,
    code: ErrorCode = ErrorCode.INVALID_ARGS,
) -> LinearRegex:
    try:
        # Not re2.compile: its unbounded-lifetime LRU cache (128 patterns) would keep each
        # pattern's DFA states (up to MAX_PROGRAM_BYTES each) after its search is done.
        return re2._Regexp(pattern.encode("utf-8") if encode else pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args else "invalid"
        raise BridgeError(
            code,
            f"invalid {what} (the search engine is RE2: no look-around or back-references): "
            f"{reason}",
            field=field,
        ) from exc


def whole_match(regex: LinearRegex) -> Callable[[bytes], bool]:
    """Whether a bytes text matches `regex` (compiled as_bytes) from end to end: RE2's own
    anchored match, without the wrapper's offset bookkeeping (5x faster on short texts)."""
    match = regex._regexp.Match
    return lambda text: match(_ANCHOR_BOTH, text, 0, len(text))[0] != _NO_MATCH


def match_start(regex: LinearRegex) -> Callable[[bytes, int], int]:
    """Where `regex` (compiled as_bytes) first matches in a bytes text from `pos` on, -1 if
    nowhere: RE2's own search, without the wrapper's match object."""
    match = regex._regexp.Match
    return lambda text, pos: match(_UNANCHORED, text, pos, len(text))[0][0]
