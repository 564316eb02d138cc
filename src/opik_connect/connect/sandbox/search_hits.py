"""A search's hits per file, their context lines, and the redacted result built from them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from opik_connect.connect.sandbox.policy import PathPolicy
from opik_connect.connect.sandbox.secret_redaction import redact
from opik_connect.protocol import BridgeError, SearchFilesResult, SearchMatch

MAX_SEARCH_MATCHES = 100
SEARCH_CONTEXT_LINES = 2


@dataclass
class Budget:
    """How many match lines all streams of one search have kept in full so far."""

    stored: int = 0


@dataclass
class FileHits:
    """One file's part of a search, kept until its end says whether it is visible text."""

    path: str
    lines: list[tuple[int, str, bool]] = field(default_factory=list)
    matched_lines: int = 0
    dropped: int = 0
    bad: bool = False


def strip_eol(text: str) -> str:
    return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text


def hides_only_secret(line: str, regex: re.Pattern[str] | None) -> bool:
    """True when a match line matched only inside a secret: returning it (or even counting it)
    would let a caller guess the secret one character at a time."""
    redacted, count = redact(line)
    return count > 0 and (regex is None or regex.search(redacted) is None)


def _redact_window(lines: list[str]) -> tuple[list[str], int]:
    """Redact search lines one by one, carrying private-key state across the window."""
    out: list[str] = []
    count = 0
    inside = False
    for line in lines:
        if "PRIVATE KEY" in line and "-----BEGIN" in line:
            inside = True
        if inside:
            inside = "-----END" not in line
            out.append("[REDACTED:private_key]")
            count += 1
            continue
        text, n = redact(line)
        out.append(text)
        count += n
    return out, count


def add_context(policy: PathPolicy, hits: list[FileHits]) -> None:
    """Read the context lines of kept matches from the files themselves (race-free open);
    a file whose context is not UTF-8 is dropped, as ReadFile would refuse it."""
    for hit in hits:
        wanted = {
            n + d
            for n, _, _ in hit.lines
            for d in range(-SEARCH_CONTEXT_LINES, SEARCH_CONTEXT_LINES + 1)
            if d and n + d > 0
        } - {n for n, _, _ in hit.lines}
        if not wanted:
            continue
        try:
            opened = policy.open_file(hit.path)
        except BridgeError:
            hit.bad = True
            continue
        last = max(wanted)
        with os.fdopen(opened.fd, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if number > last:
                    break
                if number not in wanted:
                    continue
                try:
                    hit.lines.append((number, strip_eol(raw.decode()), False))
                except UnicodeDecodeError:
                    hit.bad = True
                    break
        hit.lines.sort()


def collect(
    policy: PathPolicy,
    files: list[FileHits],
    visible: frozenset[str],
    regex: re.Pattern[str] | None,
) -> SearchFilesResult:
    """Keep visible text files; count honestly; return at most MAX_SEARCH_MATCHES."""
    matches: list[SearchMatch] = []
    total = 0
    redactions = 0
    for hit in files:
        if hit.bad or hit.path not in visible or policy.is_sensitive(hit.path):
            continue
        total += hit.matched_lines - hit.dropped
        text_at = {n: text for n, text, _ in hit.lines}
        for number, text, is_match in hit.lines:
            if not is_match:
                continue
            if hides_only_secret(text, regex):
                total -= 1
                continue
            if len(matches) >= MAX_SEARCH_MATCHES:
                continue
            before = [
                text_at[n] for n in range(number - SEARCH_CONTEXT_LINES, number) if n in text_at
            ]
            after = [
                text_at[n]
                for n in range(number + 1, number + SEARCH_CONTEXT_LINES + 1)
                if n in text_at
            ]
            window, count = _redact_window([*before, text, *after])
            redactions += count
            matches.append(
                SearchMatch(
                    file=hit.path,
                    line=number,
                    content=window[len(before)],
                    context_before=window[: len(before)],
                    context_after=window[len(before) + 1 :],
                )
            )
    matches.sort(key=lambda m: (m.file, m.line))
    return SearchFilesResult(
        matches=matches,
        total_matches=total,
        truncated=total > len(matches),
        redactions=redactions,
    )
