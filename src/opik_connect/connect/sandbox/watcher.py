"""Watch the root and report changes to visible files as FilesChanged batches.

inotify watches every directory git does not ignore (never .git/, never an ignored tree unless it
holds a tracked file), for content changes only: reading files (a search) wakes nothing. Each
debounced batch is filtered by the sandbox's rules, so ignored, sensitive and .git/ paths are never
reported. When the kernel's watch limit is reached, the watcher says so once and keeps what it
has: proposals are still checked against their files' content hashes when decided.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

from opik_connect.connect.sandbox.inotify import (
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_ISDIR,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    Inotify,
    kernel_watch_limit,
)
from opik_connect.connect.sandbox.read_commands import Sandbox
from opik_connect.connect.sandbox.watcher_batches import WatcherBatches
from opik_connect.protocol import FileChange, FilesChanged

DEFAULT_DEBOUNCE_MS = 200
GIT_DIR = ".git"
GIT_INDEX = "index"
log = logging.getLogger(__name__)

ChangeKind = Literal["added", "modified", "deleted"]
Notice = Callable[[str], None]


def _kind(full: str, added: bool) -> ChangeKind | None:
    """What happened to one path over a batch, judged by what is on disk now; None for a dir."""
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return "deleted"
    if stat.S_ISDIR(st.st_mode):
        return None
    return "added" if added else "modified"


def _kinds(prefix: str, seen: dict[str, bool]) -> dict[str, ChangeKind | None]:
    return {rel: _kind(prefix + rel, added) for rel, added in seen.items()}


def _directories(root: str, start: str, skip: Callable[[str], bool]) -> list[str]:
    """`start` and the directories below it (relative to root) that `skip` does not prune."""
    found = [start]
    stack = [start]
    while stack:
        rel = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(root, rel)))
        except OSError:
            continue
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False) and not skip(child):
                found.append(child)
                stack.append(child)
    return found


def _files_below(root: str, rel: str) -> list[str]:
    """Regular files under a directory that just appeared (created before its watch was)."""
    out = []
    for folder, _dirs, files in os.walk(os.path.join(root, rel)):
        below = os.path.relpath(folder, root)
        out += [f"{below}/{name}" for name in files]
    return out


class _Watches:
    """The inotify descriptor and the directories it watches; full once the limit is hit."""

    def __init__(self, sandbox: Sandbox, notice: Notice, budget: int | None) -> None:
        self.sandbox = sandbox
        self.root = str(sandbox.root)
        self.notice = notice
        self.inotify = Inotify(budget)
        self.full = False

    def skip(self, rel: str, ignored: set[str]) -> bool:
        return rel == GIT_DIR or rel in ignored or self.sandbox.policy.is_sensitive(rel)

    def add(self, rels: list[str]) -> int:
        """Watch each directory until the limit; returns how many were added."""
        added = 0
        for rel in rels:
            if self.full:
                break
            try:
                self.inotify.add_directory(os.path.join(self.root, rel), rel)
                added += 1
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    continue  # gone since it was listed
                self.full = True
        return added

    async def start(self) -> None:
        ignored = await self.sandbox.repo.ignored_directories()
        extra = {os.path.dirname(f) for f in await self.sandbox.repo.tracked_ignored_files()}
        wanted = await asyncio.to_thread(
            _directories, self.root, "", lambda rel: self.skip(rel, ignored)
        )
        for folder in sorted(extra):
            while folder and folder not in wanted:
                wanted.append(folder)
                folder = os.path.dirname(folder)
        added = await asyncio.to_thread(self.add, wanted)
        self.add([GIT_DIR])  # its index: what git tracks decides what is visible
        if not self.full:
            await self.sandbox.watches_up(wanted)
        self.sandbox.index.watched = not self.full
        if self.full:
            limit = kernel_watch_limit()
            self.notice(
                f"file watching is partial: {added} of {len(wanted)} directories watched "
                f"(inotify limit {limit}; raise it with `sysctl fs.inotify.max_user_watches`). "
                "Changes elsewhere are not reported; proposals are still checked against "
                "their files' content when decided."
            )

    async def new_directory(self, rel: str, seen: dict[str, bool]) -> None:
        """A directory appeared: watch it (unless ignored) and report the files already in it."""
        if self.skip(rel, set()) or rel in await self.sandbox.repo.ignored([rel]):
            return
        ignored = await self.sandbox.repo.ignored_directories()
        found = await asyncio.to_thread(
            _directories, self.root, rel, lambda child: self.skip(child, ignored)
        )
        await asyncio.to_thread(self.add, found)
        for path in await asyncio.to_thread(_files_below, self.root, rel):
            seen[path] = True


async def watch_visible_changes(
    sandbox: Sandbox,
    stop: asyncio.Event,
    *,
    debounce_ms: int = DEFAULT_DEBOUNCE_MS,
    notice: Notice = log.warning,
    budget: int | None = None,
    ready: asyncio.Event | None = None,
) -> AsyncIterator[FilesChanged]:
    """Yield one FilesChanged per debounced batch that touches a visible file, until `stop`.
    `budget` caps the watches (the kernel's limit, lowered for tests); `ready` is set once
    the watches are up. While it runs, a search waits for the batch that holds the changes
    already queued (sandbox.index.settled): until it is applied, the secret index may not
    know a file that just gained a secret, and ripgrep would read that file raw."""
    try:
        watches = _Watches(sandbox, notice, budget)
    except OSError as exc:
        notice(
            f"file watching is off ({exc.strerror}): changes are not reported; proposals are "
            "still checked against their files' content when decided."
        )
        await stop.wait()
        return
    prefix = watches.root + os.sep
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()
    fd = watches.inotify.fd
    batches = WatcherBatches(fd)

    def readable() -> None:
        # The descriptor stays readable until drained: unregister, or the loop would spin
        # through the debounce wait.
        loop.remove_reader(fd)
        arrived.set()

    stopping = asyncio.ensure_future(stop.wait())
    try:
        await watches.start()
        sandbox.index.settled = batches.settled
        if ready is not None:
            ready.set()
        while not stop.is_set():
            loop.add_reader(fd, readable)
            waiting = asyncio.ensure_future(arrived.wait())
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if stop.is_set():
                return
            await asyncio.sleep(debounce_ms / 1000)
            arrived.clear()
            batches.reading()
            seen = await _drain(watches, sandbox)
            batches.read()
            if seen is None:
                batches.applied()
                continue
            kinds = await asyncio.to_thread(_kinds, prefix, seen)
            candidates = sorted(rel for rel, kind in kinds.items() if kind is not None)
            ignored = await sandbox.repo.ignored(candidates)
            changes = [
                FileChange(path=rel, change=kind)
                for rel, kind in sorted(kinds.items())
                if kind is not None and rel not in ignored
            ]
            await sandbox.files_changed([change.path for change in changes])
            batches.applied()
            if changes:
                yield FilesChanged(changes=changes)
    finally:
        sandbox.index.watched = False
        sandbox.index.settled = None
        batches.close()
        stopping.cancel()
        loop.remove_reader(fd)
        watches.inotify.close()


async def _drain(watches: _Watches, sandbox: Sandbox) -> dict[str, bool] | None:
    """The paths the queued events touch (True: added); None when nothing visible changed."""
    seen: dict[str, bool] = {}
    while events := watches.inotify.read():
        for event in events:
            if event.mask & IN_Q_OVERFLOW:
                watches.notice("file watching overflowed: some changes were not reported")
                sandbox.changes_lost()
                continue
            folder = watches.inotify.paths.get(event.wd)
            if folder is None or event.mask & (IN_DELETE_SELF | IN_MOVE_SELF):
                continue
            if folder == GIT_DIR:
                if event.name == GIT_INDEX:
                    sandbox.invalidate()
                    sandbox.index.stale()
                continue
            rel = f"{folder}/{event.name}" if folder else event.name
            if sandbox.policy.is_sensitive(rel):
                continue
            added = bool(event.mask & (IN_CREATE | IN_MOVED_TO))
            if event.mask & IN_ISDIR:
                if added:
                    await watches.new_directory(rel, seen)
                elif event.mask & (IN_DELETE | IN_MOVED_FROM):
                    seen[rel] = False
                continue
            seen[rel] = seen.get(rel, False) or added
    return seen or None


async def run_watcher(
    sandbox: Sandbox,
    on_change: Callable[[FilesChanged], Awaitable[None]],
    stop: asyncio.Event,
    *,
    debounce_ms: int = DEFAULT_DEBOUNCE_MS,
    notice: Notice = log.warning,
    budget: int | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Call `on_change` for each batch until `stop` is set (the daemon sends it as an event)."""
    async for batch in watch_visible_changes(
        sandbox, stop, debounce_ms=debounce_ms, notice=notice, budget=budget, ready=ready
    ):
        await on_change(batch)
