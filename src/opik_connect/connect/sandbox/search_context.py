"""The context lines of SearchFiles' matches, as Opik's `git grep -C3` parsing gives them.

Each match gets up to 3 lines before and after; when two matches in a file are at most 6 lines
apart, git shows every line between them once, and Opik gives those lines to both: as the
first's context_after and the second's context_before. Neighbouring matches share nothing.
Lines are cut to SEARCH_LINE_CHARS characters, as Opik cuts them.
"""

from __future__ import annotations

from collections.abc import Sequence

from opik_connect.protocol import SearchMatch

CONTEXT_LINES = 3
SEARCH_LINE_CHARS = 500
"""A matching or context line is cut to this many characters, as Opik cuts it."""
MAX_SEARCH_BYTES = 512 * 1024
"""Opik's cap on the matches' size; the matches after it are left out (truncated)."""


def line_text(data: bytes, start: int, end: int) -> str:
    """The line data[start:end] (no newline), decoded and cut."""
    return data[start:end].decode("utf-8")[:SEARCH_LINE_CHARS]


def _before(data: bytes, line_start: int, most: int, stop: int) -> tuple[list[str], bool]:
    """Up to `most` lines ending just before `line_start`, not reaching back before `stop`;
    and whether they reach `stop` (every line in between is there)."""
    lines: list[str] = []
    at = line_start
    while at > stop and len(lines) < most:
        prev = data.rfind(b"\n", 0, at - 1) + 1
        lines.insert(0, line_text(data, prev, at - 1))
        at = prev
    return lines, at <= stop


def _after(data: bytes, line_end: int, most: int, stop: int) -> tuple[list[str], bool]:
    """Up to `most` lines starting just after `line_end` (its newline, or the end), not reaching
    `stop`; and whether they reach it."""
    lines: list[str] = []
    at = line_end
    while at + 1 < stop and len(lines) < most:
        nxt = data.find(b"\n", at + 1)
        nxt = len(data) if nxt == -1 else nxt
        lines.append(line_text(data, at + 1, nxt))
        at = nxt
    return lines, at + 1 >= stop


def set_contexts(
    data: bytes, matches: Sequence[SearchMatch], spans: Sequence[tuple[int, int]]
) -> None:
    """Fill the contexts of one file's `matches`, in order; `spans` holds each one's
    (line_start, line_end) in `data`, then the next match's span when one follows unreturned."""
    shared = 2 * CONTEXT_LINES
    for i, match in enumerate(matches):
        start, end = spans[i]
        if i:
            lines, whole = _before(data, start, shared, spans[i - 1][1] + 1)
            match.context_before = lines if whole else lines[-CONTEXT_LINES:]
        else:
            match.context_before = _before(data, start, CONTEXT_LINES, 0)[0]
        if i + 1 < len(spans):
            lines, whole = _after(data, end, shared, spans[i + 1][0])
            match.context_after = lines if whole else lines[:CONTEXT_LINES]
        else:
            match.context_after = _after(data, end, CONTEXT_LINES, len(data))[0]


def within_bytes(matches: list[SearchMatch]) -> list[SearchMatch]:
    """The leading matches whose JSON fits in MAX_SEARCH_BYTES (all of them, as a rule)."""
    chars = sum(len(t) for m in matches for t in (m.content, *m.context_before, *m.context_after))
    if 6 * chars + 200 * len(matches) <= MAX_SEARCH_BYTES:  # no character encodes past 6 bytes
        return matches
    size = 0
    for i, match in enumerate(matches):
        size += len(match.model_dump_json().encode("utf-8"))
        if size > MAX_SEARCH_BYTES:
            return matches[:i]
    return matches
