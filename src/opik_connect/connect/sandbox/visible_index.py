"""The sorted set of files ListFiles may show, kept current by the watcher's batches.

Built once from git (visible files, minus sensitive ones, minus anything but regular files and
symlinks that stay inside the root); then each reported change re-checks only its own path.
Without a watcher (or after a change git's rules decide, like a .gitignore edit) it is rebuilt
when older than REBUILD_AFTER_S, as the file list was before.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable

from opik_connect.connect.sandbox.packed_paths import PackedPaths
from opik_connect.connect.sandbox.policy import PathPolicy
from opik_connect.connect.sandbox.repo_files import RepoFiles, split_z
from opik_connect.git_runner import StartedGit

REBUILD_AFTER_S = 5.0
"""How long an unwatched index is trusted (the watcher's index is trusted until told)."""
RULE_FILES = (".gitignore",)
"""A change to one of these can change the visibility of any file: the index is rebuilt."""
CATCH_UP_SLACK_NS = 1_000_000_000
"""Directory times come from the kernel's coarse clock: a directory changed up to this long
before the git listing is re-checked too."""
MAX_CATCH_UP_DIRS = 256
"""More changed directories than this after the watches came up: rebuild instead."""
BUILD_PART_BYTES = 256 << 10
"""git's listing is checked this much at a time (some 3,000 paths): a str per path lives only
while its part is checked, so the next part reuses its memory. All 50,000 at once left some
6 MB of Python's small-object arenas held by the few long-lived objects made meanwhile."""


def _changed_directories(root: str, directories: list[str], since_ns: int) -> list[str]:
    """The topmost of `directories` whose entries changed (their mtime) since `since_ns`."""
    tops: set[str] = set()
    for rel in sorted(directories, key=lambda d: (d.count("/") + bool(d), d)):
        if "" in tops:
            break
        head = rel
        while head and head not in tops:
            head = head.rpartition("/")[0]
        if head and head in tops:
            continue
        if _mtime_ns(os.path.join(root, rel) if rel else root) >= since_ns:
            tops.add(rel)
    return sorted(tops)


def _mtime_ns(path: str) -> int:
    """When the entry last changed; a missing one counts as changed just now."""
    try:
        return os.lstat(path).st_mtime_ns
    except OSError:
        return time.time_ns()


class VisibleIndex:
    """Visible, non-sensitive, listable files of one root, sorted; one build at a time."""

    def __init__(
        self, repo: RepoFiles, policy: PathPolicy, first_listing: StartedGit | None = None
    ) -> None:
        """first_listing: a `RepoFiles.start_listing` already running, for the first build."""
        self.repo = repo
        self.policy = policy
        self._first_listing = first_listing
        self.watched = False
        """Set by the watcher while it watches every directory: then no rebuild by age."""
        self.settled: Callable[[], asyncio.Future[None] | None] | None = None
        """Set by the watcher while it runs (WatcherBatches.settled): a search waits for the
        changes already queued to it, so it never runs ahead of the secret index."""
        self._files: PackedPaths | None = None
        self._built_at = float("-inf")
        self._building: asyncio.Future[PackedPaths] | None = None
        self._generation = 0
        self._listed_at_ns: int | None = None
        """When git listed the files the current list was built from (time.time_ns())."""

    def stale(self) -> None:
        """Forget the list (git's rules or the index changed); the next call rebuilds it."""
        if self._first_listing is not None:
            self._first_listing.close()
            self._first_listing = None
        self._files = None
        self._generation += 1
        self._building = None
        self._listed_at_ns = None

    async def files(self) -> PackedPaths:
        """The current set (immutable: a change makes a new one)."""
        fresh = self.watched or time.monotonic() - self._built_at <= REBUILD_AFTER_S
        if self._files is not None and fresh:
            return self._files
        if self._building is None:
            self._building = asyncio.ensure_future(self._build())
        building = self._building
        try:
            return await asyncio.shield(building)
        finally:
            if self._building is building and building.done():
                self._building = None

    async def _build(self) -> PackedPaths:
        started, generation, listed_at_ns = time.monotonic(), self._generation, time.time_ns()
        first, self._first_listing = self._first_listing, None
        if first is not None:
            listed_at_ns = first.started_ns
            output = await self.repo.listed_output(first)
        else:
            output = await self.repo.visible_output()
        safe = await asyncio.to_thread(self._listable_output, output)
        if generation == self._generation:
            self._files, self._built_at, self._listed_at_ns = safe, started, listed_at_ns
        return safe

    async def watches_up(self, directories: list[str]) -> None:
        """The watcher watches `directories` from now on. What changed in them between the git
        listing this list was built from and now is in no event: the files of each directory
        whose entries changed since are re-checked (a .gitignore among them: rebuilt)."""
        since = self._listed_at_ns
        if since is None or self._building is not None or self._files is None:
            self.stale()  # none built, or one built from a listing older than the watches
            return
        root = str(self.policy.root)
        changed = await asyncio.to_thread(
            _changed_directories, root, directories, since - CATCH_UP_SLACK_NS
        )
        if not changed:
            return
        if len(changed) > MAX_CATCH_UP_DIRS or "" in changed:
            self.stale()
            return
        found = await self.repo.visible_files(*changed)
        files = self._files
        if files is None:  # made stale meanwhile: the next call rebuilds it
            return
        listed = [f for top in changed for f in files.under(top)]
        paths = sorted({*found, *listed})
        rules = [p for p in paths if p.rsplit("/", 1)[-1] in RULE_FILES]
        if any(_mtime_ns(os.path.join(root, p)) >= since - CATCH_UP_SLACK_NS for p in rules):
            self.stale()
            return
        await self._recheck(paths)

    def _listable_output(self, output: bytes) -> PackedPaths:
        """The files of git's NUL-separated `output` that are not sensitive and are listable,
        checked BUILD_PART_BYTES at a time (worker thread)."""
        kept: list[bytes] = []
        start = 0
        while start < len(output):
            end = output.find(b"\0", start + BUILD_PART_BYTES)
            end = len(output) if end < 0 else end
            names = [f for f in split_z(output[start:end]) if not self.policy.is_sensitive(f)]
            kept.append("\0".join(self._listable(names)).encode("utf-8"))
            start = end + 1
        return PackedPaths.from_joined(b"\0".join(part for part in kept if part))

    def _listable(self, names: list[str]) -> list[str]:
        """The names that are regular files or symlinks staying inside. One scandir
        per directory reads the types an lstat per file would (a directory's entries carry
        them), so 50,000 files cost ~8,000 system calls, not 50,000."""
        by_dir: dict[str, list[str]] = {}
        for rel in names:
            by_dir.setdefault(rel.rpartition("/")[0], []).append(rel)
        root = str(self.policy.root)
        found: list[str] = []
        for head, wanted in by_dir.items():
            try:
                with os.scandir(os.path.join(root, head) if head else root) as entries:
                    kinds = {
                        e.name: (e.is_file(follow_symlinks=False), e.is_symlink()) for e in entries
                    }
            except OSError:
                continue
            for rel in wanted:
                regular, link = kinds.get(rel.rpartition("/")[2], (False, False))
                if regular or (link and self.policy.safe_for_listing(rel)):
                    found.append(rel)
        return found

    async def apply(self, changed: Iterable[str]) -> None:
        """Re-check the paths a watcher batch reported (already filtered to git-visible ones)."""
        paths = sorted(set(changed))
        if any(p.rsplit("/", 1)[-1] in RULE_FILES for p in paths):
            self.stale()
            return
        await self._recheck(paths)

    async def _recheck(self, paths: list[str]) -> None:
        """Add or drop each path (sorted) as it is listable now."""
        if self._files is None:
            return
        listable = await asyncio.to_thread(
            lambda: {
                p
                for p in paths
                if not self.policy.is_sensitive(p) and self.policy.safe_for_listing(p)
            }
        )
        files = self._files
        if files is None:  # made stale meanwhile: the next call rebuilds it
            return
        self._files = files.changed(
            add=[p for p in paths if p in listable], remove=[p for p in paths if p not in listable]
        )
