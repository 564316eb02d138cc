"""The search proper, over the redacted view: each file is read through the race-free opener,
redacted whole (key blocks tracked start to end), and matched line by line with RE2. What the
platform gets is a function of the redacted text alone, whatever the secrets' values are."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from opik_connect.connect.sandbox.file_window import (
    BINARY_SNIFF_BYTES,
    LINE_CUT_MARK,
    MAX_LINE_BYTES,
    READ_CHUNK_BYTES,
)
from opik_connect.connect.sandbox.linear_regex import LinearRegex
from opik_connect.connect.sandbox.policy import PathPolicy
from opik_connect.connect.sandbox.secret_redaction import redact_lines
from opik_connect.protocol import BridgeError, ErrorCode, SearchFilesResult, SearchMatch

MAX_SEARCH_MATCHES = 100
SEARCH_CONTEXT_LINES = 2
MAX_SEARCH_FILE_BYTES = 32 << 20
"""A larger file is not searched (ReadFile can still page through it)."""
REDACT_BATCH_LINES = 4096
"""Lines redacted and matched between two looks at the stop flag."""


class SearchStopped(Exception):
    """The search was cancelled or ran out of time; the worker thread gives up."""


@dataclass
class ScanResult:
    matches: list[SearchMatch] = field(default_factory=list)
    total: int = 0


def _cut(line: str) -> str:
    return line[:MAX_LINE_BYTES] + LINE_CUT_MARK if len(line) > MAX_LINE_BYTES else line


def _read_text(policy: PathPolicy, rel: str, visible: frozenset[str]) -> str | None:
    """The file's text as ReadFile would see it; None for what ReadFile would refuse."""
    try:
        opened = policy.open_file(rel)
    except BridgeError:
        return None
    try:
        if opened.real_path != rel and opened.real_path not in visible:
            return None
        if opened.size > MAX_SEARCH_FILE_BYTES:
            return None
        chunks = []
        size = 0
        while size <= MAX_SEARCH_FILE_BYTES and (data := os.read(opened.fd, READ_CHUNK_BYTES)):
            chunks.append(data)
            size += len(data)
    finally:
        os.close(opened.fd)
    raw = b"".join(chunks)
    if size > MAX_SEARCH_FILE_BYTES or b"\0" in raw[:BINARY_SNIFF_BYTES] or b"\0" in raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _redacted_lines(text: str, stop: threading.Event) -> list[str]:
    """The file's lines, redacted in batches that carry the key-block state across."""
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    out: list[str] = []
    inside = False
    for start in range(0, len(lines), REDACT_BATCH_LINES):
        if stop.is_set():
            raise SearchStopped
        batch = [line.removesuffix("\r") for line in lines[start : start + REDACT_BATCH_LINES]]
        redacted, _, inside = redact_lines(batch, inside_private_key=inside)
        out += redacted
    return out


def _scan_file(path: str, lines: list[str], regex: LinearRegex, result: ScanResult) -> None:
    for index, line in enumerate(lines):
        if regex.search(line) is None:
            continue
        result.total += 1
        if len(result.matches) >= MAX_SEARCH_MATCHES:
            continue
        before = lines[max(0, index - SEARCH_CONTEXT_LINES) : index]
        after = lines[index + 1 : index + 1 + SEARCH_CONTEXT_LINES]
        result.matches.append(
            SearchMatch(
                file=path,
                line=index + 1,
                content=_cut(line),
                context_before=[_cut(t) for t in before],
                context_after=[_cut(t) for t in after],
            )
        )


def scan_files(
    policy: PathPolicy,
    paths: list[str],
    regex: LinearRegex,
    visible: frozenset[str],
    stop: threading.Event,
) -> SearchFilesResult:
    """Search `paths` in sorted order; the first MAX_SEARCH_MATCHES matches are kept, every
    match is counted. Runs in a worker thread and gives up when `stop` is set."""
    result = ScanResult()
    for path in sorted(paths):
        if stop.is_set():
            raise SearchStopped
        text = _read_text(policy, path, visible)
        if text is None:
            continue
        _scan_file(path, _redacted_lines(text, stop), regex, result)
    redactions = sum(
        text.count("[REDACTED:")
        for m in result.matches
        for text in (m.content, *m.context_before, *m.context_after)
    )
    return SearchFilesResult(
        matches=result.matches,
        total_matches=result.total,
        truncated=result.total > len(result.matches),
        redactions=redactions,
    )


def timeout_error(seconds: float) -> BridgeError:
    return BridgeError(ErrorCode.TIMEOUT, f"search took longer than {seconds:g}s")
