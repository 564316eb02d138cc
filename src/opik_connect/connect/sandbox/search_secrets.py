"""Which files redaction changes, and each line it changes as redacted, kept per path: a search
tests its pattern against those lines instead of reading every file that holds a secret."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterable

from opik_connect.connect.sandbox.linear_regex import LinearRegex
from opik_connect.connect.sandbox.policy import PathPolicy
from opik_connect.connect.sandbox.redaction_cache import Splice
from opik_connect.connect.sandbox.search_scan import (
    OutOfTime,
    SearchStopped,
    read_for_search,
    redaction_splices,
)
from opik_connect.connect.sandbox.visible_index import REBUILD_AFTER_S

MAX_DIRTY_PATHS = 1000
"""More changed paths than this are looked at by one pass over the whole root."""

Finder = Callable[[list[str] | None], Awaitable[tuple[list[str], bool] | None]]
"""Runs ripgrep for SECRET_CANDIDATE over the given paths (None: the whole root): the files it
lists and whether it finished in time; None when it could not run."""


class SecretIndex:
    """For every file where redaction changes a line, those lines as redacted (one text, a
    line each: the pattern is compiled never to match across a line end).

    A file where SECRET_CANDIDATE finds nothing reads the same redacted as raw, so one ripgrep
    pass over the root finds every file to read and redact here. Then the watcher's batches
    name the paths to look at again (`forget`), and a lost batch (`stale`) makes the next
    search rebuild it all; unwatched, it is trusted for REBUILD_AFTER_S, like the file list.
    A stale entry can only hide a match that redaction alone makes: every file a search
    answers from is read and redacted afresh."""

    def __init__(self, policy: PathPolicy, watched: Callable[[], bool]) -> None:
        self.policy = policy
        self._watched = watched
        self._lines: dict[str, bytes] = {}
        self._built_at = float("-inf")
        self._dirty: set[str] = set()
        self._lock = asyncio.Lock()

    def forget(self, paths: Iterable[str]) -> None:
        """These paths changed: look at them again before the next search."""
        self._dirty.update(paths)

    def stale(self) -> None:
        """Changes may have been missed: rebuild from the whole root before the next search."""
        self._built_at = float("-inf")

    async def refresh(self, visible: frozenset[str], deadline: float, find: Finder) -> bool:
        """Bring the index up to date by `deadline`, one refresh at a time; False when it
        could not (it is then left as it was, and the next search tries again)."""
        remaining = deadline - time.monotonic()
        try:
            async with asyncio.timeout(max(remaining, 0)):
                await self._lock.acquire()
        except TimeoutError:
            return False
        try:
            return await self._refresh(visible, deadline, find)
        finally:
            self._lock.release()

    async def _refresh(self, visible: frozenset[str], deadline: float, find: Finder) -> bool:
        trusted = self._watched() or time.monotonic() - self._built_at <= REBUILD_AFTER_S
        fresh = self._built_at > float("-inf") and trusted
        full = not fresh or len(self._dirty) > MAX_DIRTY_PATHS
        if not full and not self._dirty:
            return True
        started = time.monotonic()
        dirty, self._dirty = self._dirty, set()
        targets = None if full else sorted(p for p in dirty if self._readable(p))
        try:
            found = await find(targets) if targets != [] else ([], True)
            if found is None or not found[1]:
                raise OutOfTime
            lines = await self._redacted_lines(found[0], visible, deadline)
        except OutOfTime:
            self._dirty |= dirty
            return False
        except BaseException:
            self._dirty |= dirty
            raise
        if full:
            self._lines, self._built_at = lines, started
        else:
            for path in dirty:
                self._lines.pop(path, None)
            self._lines.update(lines)
        return True

    def _readable(self, path: str) -> bool:
        return not self.policy.is_sensitive(path) and self.policy.regular_file(path)

    async def _redacted_lines(
        self, paths: list[str], visible: frozenset[str], deadline: float
    ) -> dict[str, bytes]:
        stop = threading.Event()
        try:
            return await asyncio.to_thread(
                _changed_lines, self.policy, paths, visible, stop, deadline
            )
        finally:
            stop.set()

    def files_matching(self, regex: LinearRegex) -> list[str]:
        """The files with a line that redaction changes into one `regex` matches."""
        return [path for path, lines in self._lines.items() if regex.search(lines) is not None]


def _changed_lines(
    policy: PathPolicy,
    paths: list[str],
    visible: frozenset[str],
    stop: threading.Event,
    deadline: float,
) -> dict[str, bytes]:
    """Each file's redacted lines, for the files where redaction changes any (worker thread)."""
    out: dict[str, bytes] = {}
    for path in paths:
        if stop.is_set():
            raise SearchStopped
        if time.monotonic() >= deadline:
            raise OutOfTime
        raw = read_for_search(policy, path, visible)
        if raw is None:
            continue
        splices: tuple[Splice, ...] = redaction_splices(raw, stop, deadline)
        if splices:
            out[path] = b"\n".join(new for _, _, new in splices)
    return out
