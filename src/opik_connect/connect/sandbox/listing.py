"""git's file lists for one root, cached so a burst of commands costs one git process; while the
watcher keeps the visible index current, cached until it reports a change."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Iterable
from dataclasses import dataclass

from opik_connect.connect.sandbox.repo_files import RepoFiles
from opik_connect.connect.sandbox.visible_index import VisibleIndex

VISIBLE_CACHE_TTL_S = 5.0
"""ReadFile trusts git's file list for this long, so a read costs no git process."""


class VisiblePaths:
    """Paths as one sorted list: a lookup bisects it (some 16 comparisons for 50,000 paths)
    instead of hashing into a set, which would cost 2 MB more for a repo that size."""

    __slots__ = ("_paths",)

    def __init__(self, paths: Iterable[str]) -> None:
        self._paths = sorted(paths)

    def __contains__(self, path: object) -> bool:
        paths = self._paths
        at = bisect.bisect_left(paths, path) if isinstance(path, str) else len(paths)
        return at < len(paths) and paths[at] == path

    def under(self, rel_dir: str) -> list[str]:
        """`rel_dir` itself and the paths below it, all of them for "" (one range of the
        sorted list: from "dir/" up to "dir0", as "0" follows "/")."""
        if not rel_dir:
            return list(self._paths)
        paths = self._paths
        below = paths[
            bisect.bisect_left(paths, f"{rel_dir}/") : bisect.bisect_left(paths, f"{rel_dir}0")
        ]
        return [rel_dir, *below] if rel_dir in self else below

    def with_paths(self, extra: Iterable[str]) -> VisiblePaths:
        """These paths and `extra`."""
        return VisiblePaths([*self._paths, *(path for path in set(extra) if path not in self)])


@dataclass(frozen=True)
class Listing:
    """git's answer at one moment: visible files, and tracked files matching an ignore rule."""

    visible: VisiblePaths
    tracked_ignored: tuple[str, ...]


class ListingCache:
    """git's lists, cached until invalidated (for VISIBLE_CACHE_TTL_S at most when no watcher
    keeps them current); one refresh at a time however many commands ask at once."""

    def __init__(self, repo: RepoFiles, index: VisibleIndex) -> None:
        self.repo = repo
        self.index = index
        self._listing: Listing | None = None
        self._listing_at = float("-inf")
        self._refreshing: asyncio.Future[Listing] | None = None
        self._generation = 0

    def invalidate(self) -> None:
        """Forget the cached file lists (the watcher calls this when files change)."""
        self._listing_at = float("-inf")
        self._generation += 1
        self._refreshing = None

    def cached(self) -> Listing | None:
        """The listing if it is still current, without refreshing it."""
        fresh = self.index.watched or time.monotonic() - self._listing_at <= VISIBLE_CACHE_TTL_S
        return self._listing if fresh else None

    async def current(self) -> Listing:
        listing = self.cached()
        if listing is not None:
            return listing
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._refresh())
        refreshing = self._refreshing
        try:
            return await asyncio.shield(refreshing)
        finally:
            if self._refreshing is refreshing and refreshing.done():
                self._refreshing = None

    async def _refresh(self) -> Listing:
        started, generation = time.monotonic(), self._generation
        # A watched index's files stand for git's visible ones (one copy, no git process): what
        # it leaves out (sensitive paths, symlinks leading out) is refused anyway, and a path
        # it does not know is asked of git. Unwatched, git's plain list is cheaper to rebuild.
        visible_files = self.index.files() if self.index.watched else self.repo.visible_files()
        visible, tracked_ignored = await asyncio.gather(
            visible_files, self.repo.tracked_ignored_files()
        )
        listing = Listing(VisiblePaths(visible), tuple(tracked_ignored))
        if generation == self._generation:
            self._listing, self._listing_at = listing, started
        return listing
