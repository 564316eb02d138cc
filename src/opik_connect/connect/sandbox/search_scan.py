"""The search proper, over the redacted view: each file is read through the race-free opener,
redacted whole (key blocks tracked start to end), and matched line by line with RE2. What the
platform gets is a function of the redacted text alone, whatever the secrets' values are."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Container
from dataclasses import dataclass, field

from opik_connect.connect.sandbox.file_window import READ_CHUNK_BYTES
from opik_connect.connect.sandbox.linear_regex import (
    OWN_PATTERN_BYTES,
    LinearRegex,
    compile_line_search,
)
from opik_connect.connect.sandbox.malloc_tuning import release_freed_memory
from opik_connect.connect.sandbox.policy import PathPolicy
from opik_connect.connect.sandbox.redaction_cache import (
    RedactionCache,
    Splice,
    apply_splices,
    content_key,
)
from opik_connect.connect.sandbox.search_context import line_text, set_contexts, within_bytes
from opik_connect.connect.sandbox.secret_redaction import (
    SECRET_CANDIDATE,
    has_key_marker,
    might_contain_secret,
    redact_lines,
)
from opik_connect.protocol import BridgeError, SearchFilesResult, SearchMatch

MAX_SEARCH_MATCHES = 100
MAX_SEARCH_FILE_BYTES = 32 << 20
"""A larger file is not searched (ReadFile can still page through it)."""
REDACT_BATCH_LINES = 4096
"""Lines redacted and matched between two looks at the stop flag."""
REDACTIONS = RedactionCache()
"""Shared by every root: an entry is keyed by content, so it holds for any file with it."""


class SearchStopped(Exception):
    """The search was cancelled; the worker thread gives up."""


class OutOfTime(Exception):
    """The search reached its time limit inside a file: that file is left out."""


@dataclass
class ScanResult:
    matches: list[SearchMatch] = field(default_factory=list)
    total: int = 0


def read_for_search(policy: PathPolicy, rel: str, visible: Container[str]) -> bytes | None:
    """The file's bytes as ReadFile would see them; None for what ReadFile would refuse."""
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
    if size > MAX_SEARCH_FILE_BYTES or b"\0" in raw:
        return None
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return raw.replace(b"\r\n", b"\n")


def secret_rule_lines() -> LinearRegex:
    """SECRET_CANDIDATE for one scan. Compiled afresh (half a millisecond) so that its DFA
    cache, which grows over a large tree, goes with the scan."""
    return compile_line_search(SECRET_CANDIDATE, max_mem=OWN_PATTERN_BYTES)


def redaction_splices(
    raw: bytes,
    rules: LinearRegex,
    stop: threading.Event,
    deadline: float,
    *,
    remember: bool = True,
) -> tuple[Splice, ...]:
    """What redaction changes in the text, one splice per changed line. Text without any hint
    of a secret has none; what redaction changed in a text is cached by its content (unless
    not `remember`: a pass over a whole tree would only push the searches' entries out)."""
    if not might_contain_secret(raw):
        return ()
    key = content_key(raw)
    splices = REDACTIONS.get(key)
    if splices is None:
        if has_key_marker(raw):
            splices = _key_block_splices(raw, stop, deadline)
        else:
            splices = _rule_line_splices(raw, rules, stop, deadline)
        if remember:
            REDACTIONS.put(key, splices)
    return splices


def _redacted(raw: bytes, rules: LinearRegex, stop: threading.Event, deadline: float) -> bytes:
    """The text with every secret replaced, line for line."""
    splices = redaction_splices(raw, rules, stop, deadline)
    return apply_splices(raw, splices) if splices else raw


def _key_block_splices(raw: bytes, stop: threading.Event, deadline: float) -> tuple[Splice, ...]:
    """Every line through the rules, the key-block state carried across batches."""
    lines = raw.decode("utf-8").split("\n")
    splices: list[Splice] = []
    at = 0
    inside = False
    for first in range(0, len(lines), REDACT_BATCH_LINES):
        if stop.is_set():
            raise SearchStopped
        if time.monotonic() >= deadline:
            raise OutOfTime
        batch = lines[first : first + REDACT_BATCH_LINES]
        redacted, _, inside = redact_lines(batch, inside_private_key=inside)
        for old, new in zip(batch, redacted, strict=True):
            size = len(old.encode("utf-8"))
            if new != old:
                splices.append((at, at + size, new.encode("utf-8")))
            at += size + 1
    return tuple(splices)


def _rule_line_splices(
    raw: bytes, rules: LinearRegex, stop: threading.Event, deadline: float
) -> tuple[Splice, ...]:
    """Without key markers redaction works line by line, and a line where SECRET_CANDIDATE
    finds nothing comes out as it went in: one RE2 pass finds the lines to redact, and only
    those go through the Python rules."""
    splices: list[Splice] = []
    pos = 0
    size = len(raw)
    while pos <= size and (found := rules.search(raw, pos)) is not None:
        if stop.is_set():
            raise SearchStopped
        if time.monotonic() >= deadline:
            raise OutOfTime
        start = raw.rfind(b"\n", 0, found.start()) + 1
        end = raw.find(b"\n", found.start())
        end = size if end == -1 else end
        old = raw[start:end].decode("utf-8")
        (new,), _, _ = redact_lines([old])
        if new != old:
            splices.append((start, end, new.encode("utf-8")))
        pos = end + 1
    return tuple(splices)


def _scan_file(path: str, data: bytes, regex: LinearRegex, result: ScanResult) -> None:
    """One RE2 pass over the whole text, resuming at the line after each matching line."""
    size = len(data)
    pos = counted = line_no = 0
    first = len(result.matches)
    spans: list[tuple[int, int]] = []
    while (found := regex.search(data, pos)) is not None:
        start = found.start()
        if start == size and size and data.endswith(b"\n"):
            break
        line_start = data.rfind(b"\n", 0, start) + 1
        line_no += data.count(b"\n", counted, line_start)
        counted = line_start
        line_end = data.find(b"\n", start)
        line_end = size if line_end == -1 else line_end
        result.total += 1
        if len(spans) <= len(result.matches) - first:  # the first unreturned one sets contexts
            spans.append((line_start, line_end))
        if len(result.matches) < MAX_SEARCH_MATCHES:
            result.matches.append(
                SearchMatch(
                    file=path, line=line_no + 1, content=line_text(data, line_start, line_end)
                )
            )
        if line_end >= size:
            break
        pos = line_end + 1
    set_contexts(data, result.matches[first:], spans)


def scan_files(
    policy: PathPolicy,
    paths: list[str],
    regex: LinearRegex,
    visible: Container[str],
    stop: threading.Event,
    *,
    deadline: float = float("inf"),
) -> SearchFilesResult:
    """Search `paths` in sorted order until the first page (MAX_SEARCH_MATCHES) is full at the
    end of a file, or time.monotonic() reaches `deadline`: the result is then truncated and its
    total counts the files searched, a lower bound. A full page is always marked truncated,
    whatever files are left, so where the search stops and what it says depend on the redacted
    matches in path order alone: the early stop tells the platform nothing about a secret.
    Runs in a worker thread and gives up when `stop` is set (cancellation). The pages the
    scan freed go back to the system at its end (~1 ms): glibc keeps freed blocks inside a
    worker's arena otherwise, some 4 MB after a few searches of a large tree."""
    result = ScanResult()
    rules = secret_rule_lines()
    cut = False
    for path in sorted(paths):
        if stop.is_set():
            raise SearchStopped
        if len(result.matches) >= MAX_SEARCH_MATCHES:
            break
        if time.monotonic() >= deadline:
            cut = True
            break
        raw = read_for_search(policy, path, visible)
        if raw is None:
            continue
        try:
            data = _redacted(raw, rules, stop, deadline)
        except OutOfTime:
            cut = True
            break
        _scan_file(path, data, regex, result)
    release_freed_memory()
    return _result(result, cut=cut)


def _result(result: ScanResult, *, cut: bool) -> SearchFilesResult:
    matches = within_bytes(result.matches)
    redactions = sum(
        text.count("[REDACTED:")
        for m in matches
        for text in (m.content, *m.context_before, *m.context_after)
    )
    return SearchFilesResult(
        matches=matches,
        total_matches=result.total,
        truncated=cut
        or len(result.matches) >= MAX_SEARCH_MATCHES
        or len(matches) < len(result.matches),
        redactions=redactions,
    )


def out_of_time() -> SearchFilesResult:
    """The answer of a search that reached its time limit before the scan began."""
    return _result(ScanResult(), cut=True)
