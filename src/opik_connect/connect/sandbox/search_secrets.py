"""Which files a search must not let ripgrep read as they are: those redaction changes (ripgrep
reads their redacted copies in a shadow tree instead) and those a search never answers from."""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from pathlib import Path

from opik_connect.connect.sandbox import search_scan
from opik_connect.connect.sandbox.malloc_tuning import release_freed_memory
from opik_connect.connect.sandbox.policy import PathPolicy
from opik_connect.connect.sandbox.redaction_cache import apply_splices, content_key
from opik_connect.connect.sandbox.search_scan import (
    SearchStopped,
    read_for_search,
    redaction_splices,
    secret_rule_lines,
)
from opik_connect.connect.sandbox.secret_redaction import forget_hint_states
from opik_connect.connect.sandbox.shadow_tree import ShadowTree
from opik_connect.connect.sandbox.visible_index import REBUILD_AFTER_S

MAX_DIRTY_PATHS = 1000
"""More changed paths than this are looked at by one pass over the whole root."""
SETTLED_NS = 2_000_000_000
"""A file whose status changed more recently than this may change again within one tick of
its file system's clock without its signature changing: it is read again at the next look
(git's rule for racily clean files)."""

FileSignature = tuple[int, int, int, int, int]
"""st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns: a write changes st_ctime_ns, which no
one can set back, so the same signature means the content last read."""

Finder = Callable[[list[str] | None], Awaitable[list[str]]]
"""The files where ripgrep finds SECRET_CANDIDATE among the given paths (None: the root)."""


class SecretIndex:
    """The files a search keeps ripgrep out of: for each file where redaction changes a line,
    the content key its redacted copy in the shadow tree was written from; None for a file
    where SECRET_CANDIDATE matches that a search never answers from (binary, not UTF-8, too
    large, refused by the opener).

    A file where SECRET_CANDIDATE finds nothing reads the same redacted as raw, so one ripgrep
    pass over the root finds every file to look at here. Then the watcher's batches name the
    paths to look at again (`forget`; a search first waits for the batch holding the changes
    queued when it starts, see WatcherBatches), and a lost batch (`stale`) makes the next search
    rebuild it all; unwatched, it is trusted for REBUILD_AFTER_S, like the file list. A rg pass
    that fails (it cannot run) is an error of the search, and tried again. A stale entry
    (a file changed since, not yet looked at) can only hide or add a candidate: every file a
    search answers from is read and redacted afresh.

    A file past the size a search reads is held (None) whatever it holds, found by its size
    alone, so a search's ripgrep never reads a file no search answers from."""

    def __init__(self, policy: PathPolicy, watched: Callable[[], bool]) -> None:
        self.policy = policy
        self._watched = watched
        self.held: dict[str, bytes | None] = {}
        self._clean: dict[str, bytes] = {}
        """The content key of each file last read with nothing for redaction to change: a
        rebuild (every REBUILD_AFTER_S when unwatched) does not redact it again."""
        self._signed: dict[str, FileSignature] = {}
        """The signature each held or clean file had, settled, when it was read: a rebuild
        that finds it unchanged keeps its entry without reading it again."""
        self.shadows: ShadowTree | None = None
        self._built_at = float("-inf")
        self._generation = 0
        """Counts `stale` calls: a full build during which one came keeps the index stale."""
        self._dirty: set[str] = set()
        self._running: asyncio.Future[None] | None = None

    @property
    def shadow_root(self) -> Path | None:
        """Where the redacted copies are (None before the first refresh)."""
        return self.shadows.root if self.shadows is not None else None

    def forget(self, paths: Iterable[str]) -> None:
        """These paths changed: look at them again before the next search."""
        self._dirty.update(paths)

    def stale(self) -> None:
        """Changes may have been missed: rebuild from the whole root before the next search
        (also when a build is running: it may have read the tree before those changes)."""
        self._built_at = float("-inf")
        self._generation += 1

    async def refresh(self, visible: Collection[str], until: float, find: Finder) -> bool:
        """Bring the index up to date, waiting until time.monotonic() reaches `until` at most.
        A refresh runs on its own (one at a time): a search that stops waiting leaves its work
        to the next one. False when the index is not current by then. A refresh this call
        started is current for it once done, even if it is trusted for no time at all."""
        while True:
            mine = self._running is None
            if mine:
                if self._current():
                    return True
                self._running = asyncio.ensure_future(self._refresh(visible, find))
                self._running.add_done_callback(self._finished)
            running = self._running
            assert running is not None
            try:
                async with asyncio.timeout(max(until - time.monotonic(), 0)):
                    await asyncio.shield(running)
            except TimeoutError:
                return False
            if mine:
                return True

    def _current(self) -> bool:
        trusted = self._watched() or time.monotonic() - self._built_at <= REBUILD_AFTER_S
        return self._built_at > float("-inf") and trusted and not self._dirty

    def _finished(self, task: asyncio.Future[None]) -> None:
        self._running = None
        if not task.cancelled():
            task.exception()  # raised to the searches that wait; retrieved for the others

    async def _refresh(self, visible: Collection[str], find: Finder) -> None:
        trusted = self._watched() or time.monotonic() - self._built_at <= REBUILD_AFTER_S
        fresh = self._built_at > float("-inf") and trusted
        full = not fresh or len(self._dirty) > MAX_DIRTY_PATHS
        started, generation = time.monotonic(), self._generation
        dirty, self._dirty = self._dirty, set()
        targets = None if full else sorted(p for p in dirty if self._readable(p))
        if self.shadows is None:
            self.shadows = ShadowTree.create()
        try:
            found, large = await asyncio.gather(
                find(targets) if targets != [] else _nothing(),
                asyncio.to_thread(too_large, self.policy.root, visible if full else targets or []),
            )
            found = [path for path in found if path not in large]
            looked_at = set(self.held) if full else dirty & set(self.held)
            held, clean, signed = await self._look_at(
                found, visible, sorted(looked_at - set(found))
            )
            held.update(dict.fromkeys(large))
        except BaseException:
            self._dirty |= dirty
            raise
        if full:
            self.held, self._clean, self._signed = held, clean, signed
            self._built_at = started if generation == self._generation else float("-inf")
        else:
            for path in dirty:
                self.held.pop(path, None)
                self._clean.pop(path, None)
                self._signed.pop(path, None)
            self.held.update(held)
            self._clean.update(clean)
            self._signed.update(signed)

    def _readable(self, path: str) -> bool:
        return not self.policy.is_sensitive(path) and self.policy.regular_file(path)

    async def _look_at(
        self, paths: list[str], visible: Collection[str], gone: list[str]
    ) -> tuple[dict[str, bytes | None], dict[str, bytes], dict[str, FileSignature]]:
        stop = threading.Event()
        assert self.shadows is not None
        known = (dict(self.held), dict(self._clean), dict(self._signed))
        args = (self.policy, paths, visible, stop, known, self.shadows, gone)
        try:
            return await asyncio.to_thread(_look_at, *args)
        finally:
            stop.set()


async def _nothing() -> list[str]:
    return []


def too_large(root: Path, paths: Iterable[str]) -> set[str]:
    """The paths past the size a search reads (worker thread: a stat each, 0.13 s for 50,000
    files, beside the secret pass, which reads them too: with --max-filesize it would stat
    every file itself, and it passes over the whole tree only when the index is rebuilt)."""
    limit = search_scan.MAX_SEARCH_FILE_BYTES
    large = set()
    for path in paths:
        st = _lstat(root, path)
        if st is not None and st.st_size > limit:
            large.add(path)
    return large


def _look_at(
    policy: PathPolicy,
    paths: list[str],
    visible: Collection[str],
    stop: threading.Event,
    known: tuple[dict[str, bytes | None], dict[str, bytes], dict[str, FileSignature]],
    shadows: ShadowTree,
    gone: list[str],
) -> tuple[dict[str, bytes | None], dict[str, bytes], dict[str, FileSignature]]:
    """The entries for `paths` (worker thread), held, clean and signed: each file is read as
    a search reads it and, when redaction changes it, its redacted copy written. A file with
    the signature it had when last read keeps its entry unread; one read with the content it
    had at the last look is not redacted again (nor its copy written). `gone` and the files
    redaction leaves alone lose their copies. Once a pass over a large tree is done (its RE2
    rules freed too), its pages go back to the system."""
    for path in gone:
        shadows.remove(path)
    was_held, was_clean, was_signed = known
    held: dict[str, bytes | None] = {}
    clean: dict[str, bytes] = {}
    signed: dict[str, FileSignature] = {}
    settled_before = time.time_ns() - SETTLED_NS
    rules = secret_rule_lines()
    for path in paths:
        if stop.is_set():
            raise SearchStopped
        signature = _signature(policy.root, path)
        if signature is not None and was_signed.get(path) == signature:
            if path in was_held:
                held[path], signed[path] = was_held[path], signature
                continue
            if path in was_clean:
                clean[path], signed[path] = was_clean[path], signature
                continue
        if signature is not None and signature[4] < settled_before:
            signed[path] = signature  # taken before the read: a write since changes it
        raw = read_for_search(policy, path, visible)
        if raw is None:
            if path in was_held:
                shadows.remove(path)
            held[path] = None
            continue
        key = content_key(raw)
        if was_held.get(path) == key:
            held[path] = key
            continue
        if was_clean.get(path) == key:
            clean[path] = key
            continue
        splices = redaction_splices(raw, rules, stop, math.inf, remember=False)
        if not splices:
            if path in was_held:
                shadows.remove(path)
            clean[path] = key
            continue
        shadows.write(path, apply_splices(raw, splices))
        held[path] = key
    if len(paths) > MAX_DIRTY_PATHS:
        forget_hint_states()
        release_freed_memory()
    return held, clean, signed


def _signature(root: Path, path: str) -> FileSignature | None:
    st = _lstat(root, path)
    if st is None:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _lstat(root: Path, path: str) -> os.stat_result | None:
    try:
        return os.stat(os.path.join(root, path), follow_symlinks=False)
    except OSError:
        return None
