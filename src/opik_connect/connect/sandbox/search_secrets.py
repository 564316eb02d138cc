"""Which files redaction changes, and each line it changes as redacted, kept per path: a search
tests its pattern against those lines instead of reading every file that holds a secret."""

from __future__ import annotations

import asyncio
import math
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Container, Iterable

from opik_connect.connect.sandbox.linear_regex import LinearRegex
from opik_connect.connect.sandbox.malloc_tuning import release_freed_memory
from opik_connect.connect.sandbox.policy import PathPolicy
from opik_connect.connect.sandbox.redaction_cache import content_key
from opik_connect.connect.sandbox.search_scan import (
    SearchStopped,
    read_for_search,
    redaction_splices,
    secret_rule_lines,
)
from opik_connect.connect.sandbox.secret_redaction import forget_hint_states
from opik_connect.connect.sandbox.visible_index import REBUILD_AFTER_S

MAX_DIRTY_PATHS = 1000
"""More changed paths than this are looked at by one pass over the whole root."""
PACK_LINES_BYTES = 64 << 10
"""A file's changed lines this long or longer are kept zlib-compressed: a dozen minified
bundles and data files of a large tree hold most of the index's bytes (4.6 of 7.2 MB in the
bench repo) in a few lines, at a third of that compressed, for ~15 ms of inflating a search."""


class Packed(bytes):
    """A file's changed lines, zlib-compressed."""


def _text(lines: bytes) -> bytes:
    return zlib.decompress(lines) if isinstance(lines, Packed) else lines


Finder = Callable[[list[str] | None], Awaitable[list[str]]]
"""The files where ripgrep finds SECRET_CANDIDATE among the given paths (None: the root)."""


class SecretIndex:
    """For every file where redaction changes a line, those lines as redacted (one bytes per
    file: 25,000 changed lines cost their text, not a tuple each), so a search can match them.

    A file where SECRET_CANDIDATE finds nothing reads the same redacted as raw, so one ripgrep
    pass over the root finds every file to read and redact here. Then the watcher's batches
    name the paths to look at again (`forget`), and a lost batch (`stale`) makes the next
    search rebuild it all; unwatched, it is trusted for REBUILD_AFTER_S, like the file list.
    A rg pass that fails (it cannot run) is an error of the search, and tried again.
    A stale entry can only hide a match that redaction alone makes: every file a search
    answers from is read and redacted afresh."""

    def __init__(self, policy: PathPolicy, watched: Callable[[], bool]) -> None:
        self.policy = policy
        self._watched = watched
        self._lines: dict[str, bytes] = {}
        self._by_content: dict[bytes, bytes] = {}
        """Content key -> its changed lines (b"" for none), for every file the last pass read:
        a rebuild (every REBUILD_AFTER_S when unwatched) redacts only what changed since."""
        self._built_at = float("-inf")
        self._dirty: set[str] = set()
        self._running: asyncio.Future[None] | None = None

    def forget(self, paths: Iterable[str]) -> None:
        """These paths changed: look at them again before the next search."""
        self._dirty.update(paths)

    def stale(self) -> None:
        """Changes may have been missed: rebuild from the whole root before the next search."""
        self._built_at = float("-inf")

    async def refresh(self, visible: Container[str], until: float, find: Finder) -> bool:
        """Bring the index up to date, waiting until time.monotonic() reaches `until` at most.
        A refresh runs on its own (one at a time): a search that stops waiting leaves its work
        to the next one. False when the index is not current by then."""
        while True:
            if self._running is None:
                if self._current():
                    return True
                self._running = asyncio.ensure_future(self._refresh(visible, find))
                self._running.add_done_callback(self._finished)
            try:
                async with asyncio.timeout(max(until - time.monotonic(), 0)):
                    await asyncio.shield(self._running)
            except TimeoutError:
                return False

    def _current(self) -> bool:
        trusted = self._watched() or time.monotonic() - self._built_at <= REBUILD_AFTER_S
        return self._built_at > float("-inf") and trusted and not self._dirty

    def _finished(self, task: asyncio.Future[None]) -> None:
        self._running = None
        if not task.cancelled():
            task.exception()  # raised to the searches that wait; retrieved for the others

    async def _refresh(self, visible: Container[str], find: Finder) -> None:
        trusted = self._watched() or time.monotonic() - self._built_at <= REBUILD_AFTER_S
        fresh = self._built_at > float("-inf") and trusted
        full = not fresh or len(self._dirty) > MAX_DIRTY_PATHS
        started = time.monotonic()
        dirty, self._dirty = self._dirty, set()
        targets = None if full else sorted(p for p in dirty if self._readable(p))
        try:
            found = await find(targets) if targets != [] else []
            lines, seen = await self._changes(found, visible) if found else ({}, {})
        except BaseException:
            self._dirty |= dirty
            raise
        if full:
            self._lines, self._by_content, self._built_at = lines, seen, started
        else:
            self._by_content.update(seen)
            for path in dirty:
                self._lines.pop(path, None)
            self._lines.update(lines)

    def _readable(self, path: str) -> bool:
        return not self.policy.is_sensitive(path) and self.policy.regular_file(path)

    async def _changes(
        self, paths: list[str], visible: Container[str]
    ) -> tuple[dict[str, bytes], dict[bytes, bytes]]:
        stop = threading.Event()
        known = self._by_content
        try:
            return await asyncio.to_thread(_changes, self.policy, paths, visible, stop, known)
        finally:
            stop.set()

    async def files_matching(self, regex: LinearRegex) -> list[str]:
        """The files with a line that redaction changes into one `regex` matches (each file's
        lines as one text, a line each: the pattern never matches across a line end). In a
        worker thread, over the entries as they are now: inflating the packed ones takes
        some 15 ms, which a search spends while rg runs, not on the event loop."""
        return await asyncio.to_thread(_matching, list(self._lines.items()), regex)


def _matching(entries: list[tuple[str, bytes]], regex: LinearRegex) -> list[str]:
    return [path for path, lines in entries if regex.search(_text(lines)) is not None]


def _changes(
    policy: PathPolicy,
    paths: list[str],
    visible: Container[str],
    stop: threading.Event,
    known: dict[bytes, bytes],
) -> tuple[dict[str, bytes], dict[bytes, bytes]]:
    """The lines redaction changes in each file, as redacted and joined by newlines, for the
    files where it changes any (worker thread); and each content key read with its lines.
    A content in `known` is not redacted again. Once a pass over a large tree is done (its
    RE2 rules freed too), the pages it freed go back to the system."""
    found = _changed_lines(policy, paths, visible, stop, known)
    if len(paths) > MAX_DIRTY_PATHS:
        forget_hint_states()
        release_freed_memory()
    return found


def _changed_lines(
    policy: PathPolicy,
    paths: list[str],
    visible: Container[str],
    stop: threading.Event,
    known: dict[bytes, bytes],
) -> tuple[dict[str, bytes], dict[bytes, bytes]]:
    out: dict[str, bytes] = {}
    seen: dict[bytes, bytes] = {}
    rules = secret_rule_lines()
    for path in paths:
        if stop.is_set():
            raise SearchStopped
        raw = read_for_search(policy, path, visible)
        if raw is None:
            continue
        key = content_key(raw)
        lines = known.get(key)
        if lines is None:
            splices = redaction_splices(raw, rules, stop, math.inf, remember=False)
            lines = b"\n".join(new for _, _, new in splices)
            if len(lines) >= PACK_LINES_BYTES:
                lines = Packed(zlib.compress(lines, 1))
        seen[key] = lines
        if lines:
            out[path] = lines
    return out, seen
