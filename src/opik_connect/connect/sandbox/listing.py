"""git's file lists for one root, cached so a burst of commands costs one git process; while the
watcher keeps the visible index current, cached until it reports a change."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from opik_connect.connect.sandbox.packed_paths import PackedPaths
from opik_connect.connect.sandbox.repo_files import RepoFiles
from opik_connect.connect.sandbox.visible_index import VisibleIndex

VISIBLE_CACHE_TTL_S = 5.0
"""ReadFile trusts git's file list for this long, so a read costs no git process."""


@dataclass(frozen=True)
class Listing:
    """git's answer at one moment: visible files, and tracked files matching an ignore rule."""

    visible: PackedPaths
    tracked_ignored: tuple[str, ...]


class ListingCache:
    """git's lists, cached until invalidated (for VISIBLE_CACHE_TTL_S at most when no watcher
    keeps them current); one refresh at a time however many commands ask at once."""

    def __init__(self, repo: RepoFiles, index: VisibleIndex) -> None:
        self.repo = repo
        self.index = index
        self._listing: Listing | None = None
        self._listing_at = float("-inf")
        self._from_index = False
        """The listing's visible set is the watched index's own (else git's, taken apart)."""
        self._refreshing: asyncio.Future[Listing] | None = None
        self._generation = 0

    def invalidate(self) -> None:
        """Forget the cached file lists (the watcher calls this when files change)."""
        self._listing = None
        self._listing_at = float("-inf")
        self._generation += 1
        self._refreshing = None

    def cached(self) -> Listing | None:
        """The listing if it is still current, without refreshing it. A listing taken from git
        before the watcher came up is kept only for VISIBLE_CACHE_TTL_S: then the next one
        shares the index's set (kept current by the watcher), not a second copy of it."""
        watched = self.index.watched and self._from_index
        fresh = watched or time.monotonic() - self._listing_at <= VISIBLE_CACHE_TTL_S
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
        started, generation, from_index = time.monotonic(), self._generation, self.index.watched
        # A watched index's files stand for git's visible ones (the same set, no git process):
        # what it leaves out (sensitive paths, symlinks leading out) is refused anyway, and a
        # path it does not know is asked of git. Unwatched, git's plain list is cheaper to
        # rebuild.
        if from_index:
            visible, tracked_ignored = await asyncio.gather(
                self.index.files(), self.repo.tracked_ignored_files()
            )
        else:
            output, tracked_ignored = await asyncio.gather(
                self.repo.visible_output(), self.repo.tracked_ignored_files()
            )
            visible = await asyncio.to_thread(PackedPaths.from_joined, output)
        listing = Listing(visible, tuple(tracked_ignored))
        if generation == self._generation:
            self._listing, self._listing_at, self._from_index = listing, started, from_index
        return listing
