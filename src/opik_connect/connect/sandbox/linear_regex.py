"""Every regex the platform supplies (a search pattern, a glob) is compiled for RE2, whose
matching time is linear in the text: no pattern can make the daemon backtrack."""

from __future__ import annotations

import re2

from opik_connect.protocol import BridgeError, ErrorCode

MAX_PROGRAM_BYTES = 32 << 20
"""RE2's memory budget per pattern; a larger program is refused as invalid, not built."""

LinearRegex = re2._Regexp


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = MAX_PROGRAM_BYTES
    return options


_OPTIONS = _options()


def compile_linear(pattern: str, *, what: str = "regex", field: str = "pattern") -> LinearRegex:
    """The pattern compiled by RE2; a syntax it lacks (look-around, back-references) or a
    program too large is a named error (invalid_args) that depends on the pattern alone."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args else "invalid"
        raise BridgeError(
            ErrorCode.INVALID_ARGS,
            f"invalid {what} (the search engine is RE2: no look-around or back-references): "
            f"{reason}",
            field=field,
        ) from exc
