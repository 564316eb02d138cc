"""Path globs as regexes: `**` spans directories, `*` and `?` stay in one name. A glob the
platform sends compiles to RE2 (linear time); the fixed sensitive-name globs to a fast matcher."""

from __future__ import annotations

import re
from collections.abc import Iterable

from opik_connect.connect.sandbox.linear_regex import LinearRegex, compile_linear
from opik_connect.protocol import BridgeError, ErrorCode


def glob_to_regex(pattern: str) -> str:
    """Translate a path glob to a regex: `**` spans directories, `*` and `?` stay in one name.
    A run of stars is one `**`, so the regex grows linearly with the glob."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**", i):
            while i < n and pattern[i] == "*":
                i += 1
            if pattern.startswith("/", i):
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out.append(re.escape(c))
                i += 1
                continue
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


MAX_GLOB_CHARS = 1000


class NameMatcher:
    """Case-insensitive full match of one name (no "/") against globs. An ASCII name is checked
    with set and prefix/suffix/substring lookups (ASCII lower-casing is exactly re.IGNORECASE
    there), ~2x faster than one combined regex over a large repo's names; any other name, and
    any glob of another shape, goes to the regex."""

    def __init__(self, globs: Iterable[str]) -> None:
        exact, prefixes, suffixes, inner, other = set(), [], [], [], []
        for glob in globs:
            lower, parts = glob.lower(), glob.lower().split("*")
            if "?" in glob or "[" in glob or len(parts) > 3:
                other.append(glob)
            elif len(parts) == 1:
                exact.add(lower)
            elif len(parts) == 2 and not (parts[0] and parts[1]):
                (prefixes if parts[0] else suffixes).append(parts[0] or parts[1])
            elif len(parts) == 3 and not parts[0] and not parts[2] and parts[1]:
                inner.append(parts[1])
            else:
                other.append(glob)
        self._exact = frozenset(exact)
        self._prefixes, self._suffixes = tuple(prefixes), tuple(suffixes)
        self._inner = re.compile("|".join(map(re.escape, inner))) if inner else None
        self._other = _names_regex(other)
        self._regex = _names_regex(globs)

    def match(self, name: str) -> bool:
        if not name.isascii():
            return self._regex is not None and self._regex.match(name) is not None
        lower = name.lower()
        return (
            lower in self._exact
            or lower.startswith(self._prefixes)
            or lower.endswith(self._suffixes)
            or (self._inner is not None and self._inner.search(lower) is not None)
            or (self._other is not None and self._other.match(name) is not None)
        )


def _names_regex(globs: Iterable[str]) -> re.Pattern[str] | None:
    names = "|".join(glob_to_regex(g) for g in globs)
    return re.compile(rf"(?:{names})\Z", re.IGNORECASE | re.DOTALL) if names else None


def compile_glob(pattern: str, *, field: str = "pattern") -> LinearRegex:
    """A full-match matcher for one glob over a relative path, in linear time (RE2)."""
    if len(pattern) > MAX_GLOB_CHARS:
        raise BridgeError(
            ErrorCode.INVALID_ARGS, f"glob longer than {MAX_GLOB_CHARS} characters", field=field
        )
    return compile_linear("(?s)" + glob_to_regex(pattern) + r"\z", what="glob", field=field)
