"""The sorted list of files ListFiles may show, kept current by the watcher's batches.

Built once from git (visible files, minus sensitive ones, minus anything but regular files and
symlinks that stay inside the root); then each reported change re-checks only its own path.
Without a watcher (or after a change git's rules decide, like a .gitignore edit) it is rebuilt
when older than REBUILD_AFTER_S, as the file list was before.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import time
from collections.abc import Iterable

from opik_connect.connect.sandbox.policy import PathPolicy
from opik_connect.connect.sandbox.repo_files import RepoFiles

REBUILD_AFTER_S = 5.0
"""How long an unwatched index is trusted (the watcher's index is trusted until told)."""
RULE_FILES = (".gitignore",)
"""A change to one of these can change the visibility of any file: the index is rebuilt."""


class VisibleIndex:
    """Visible, non-sensitive, listable files of one root, sorted; one build at a time."""

    def __init__(self, repo: RepoFiles, policy: PathPolicy) -> None:
        self.repo = repo
        self.policy = policy
        self.watched = False
        """Set by the watcher while it watches every directory: then no rebuild by age."""
        self._files: list[str] | None = None
        self._built_at = float("-inf")
        self._building: asyncio.Future[list[str]] | None = None
        self._generation = 0

    def stale(self) -> None:
        """Forget the list (git's rules or the index changed); the next call rebuilds it."""
        self._files = None
        self._generation += 1
        self._building = None

    async def files(self) -> list[str]:
        """The current sorted list (do not modify it)."""
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

    async def _build(self) -> list[str]:
        started, generation = time.monotonic(), self._generation
        raw = await self.repo.visible_files()
        names = [f for f in raw if not self.policy.is_sensitive(f)]
        safe = await asyncio.to_thread(self._listable, names)
        if generation == self._generation:
            self._files, self._built_at = safe, started
        return safe

    def _listable(self, names: list[str]) -> list[str]:
        """The names that are regular files or symlinks staying inside, sorted. One scandir
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
            for rel in wanted:  # the list keeps git's strings: no second copy of every path
                regular, link = kinds.get(rel.rpartition("/")[2], (False, False))
                if regular or (link and self.policy.safe_for_listing(rel)):
                    found.append(rel)
        found.sort()
        return found

    async def apply(self, changed: Iterable[str]) -> None:
        """Re-check the paths a watcher batch reported (already filtered to git-visible ones)."""
        paths = sorted(set(changed))
        if any(p.rsplit("/", 1)[-1] in RULE_FILES for p in paths):
            self.stale()
            return
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
        for path in paths:
            at = bisect.bisect_left(files, path)
            present = at < len(files) and files[at] == path
            if path in listable and not present:
                files.insert(at, path)
            elif path not in listable and present:
                del files[at]
