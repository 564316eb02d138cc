"""SearchFiles: ripgrep (or git grep) over git's visible files, minus the sensitive ones."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

from opik_connect.connect.sandbox import search_hits
from opik_connect.connect.sandbox.git_grep import run_git_grep
from opik_connect.connect.sandbox.listing import Listing, ListingCache
from opik_connect.connect.sandbox.policy import SENSITIVE_NAME_GLOBS, PathPolicy, compile_glob
from opik_connect.connect.sandbox.repo_files import RepoFiles
from opik_connect.connect.sandbox.ripgrep import RgStream, run_rg
from opik_connect.connect.sandbox.search_hits import Budget, FileHits
from opik_connect.protocol import BridgeError, ErrorCode, SearchFilesResult

MAX_LIST_FILES = 1000
SEARCH_TIMEOUT_S = 30.0


def glob_filter(glob: str | None) -> Callable[[str], bool]:
    """ripgrep's meaning of a glob: without '/', it matches the file name at any depth."""
    if not glob:
        return lambda _path: True
    negate = glob.startswith("!")
    body = glob[1:] if negate else glob
    matcher = compile_glob(body.lstrip("/") if "/" in body else "**/" + body)
    return lambda path: bool(matcher.match(path)) != negate


class FileSearch:
    """Runs one root's searches: the walk, git's verdict on what is visible, the context."""

    def __init__(
        self,
        root: Path,
        repo: RepoFiles,
        policy: PathPolicy,
        listings: ListingCache,
        rg: str | None,
    ) -> None:
        self.root = root
        self.repo = repo
        self.policy = policy
        self.listings = listings
        self.rg = rg

    async def search(self, pattern: str, glob: str | None, rel_dir: str) -> SearchFilesResult:
        try:
            regex: re.Pattern[str] | None = re.compile(pattern)
        except re.error:
            regex = None
        search = self._search_rg if self.rg else self._search_git_grep
        try:
            files, visible = await asyncio.wait_for(
                search(pattern, glob, rel_dir, regex), timeout=SEARCH_TIMEOUT_S
            )
        except TimeoutError as exc:
            raise BridgeError(
                ErrorCode.TIMEOUT, f"search took longer than {SEARCH_TIMEOUT_S:g}s"
            ) from exc
        return search_hits.collect(self.policy, files, visible, regex)

    async def _search_rg(
        self, pattern: str, glob: str | None, rel_dir: str, regex: re.Pattern[str] | None
    ) -> tuple[list[FileHits], frozenset[str]]:
        """ripgrep walks with its own ignore rules (fast); git's file list, fetched at the same
        time, then decides. Tracked files that match an ignore rule are searched explicitly."""
        assert self.rg is not None
        excludes: list[str] = []
        for name in SENSITIVE_NAME_GLOBS:
            excludes += ["--iglob", f"!{name}"]
        for deny in self.policy.deny_globs:
            excludes += ["--glob", f"!{deny}"]
        base = [
            self.rg,
            "--no-config",
            "--json",
            "--hidden",
            "--no-ignore-dot",
            "--no-messages",
            *([f"--glob={glob}"] if glob else []),
            *excludes,
            f"--regexp={pattern}",
            "--",
        ]
        budget = Budget()
        streams = [RgStream(budget, regex)]
        walk = asyncio.ensure_future(run_rg([*base, rel_dir or "."], self.root, streams[0]))
        try:
            listing = await self.listings.current()
            extra = await self._tracked_ignored(listing, rel_dir, glob_filter(glob))
            if extra:
                streams.append(RgStream(budget, regex))
                await run_rg([*base, *extra], self.root, streams[1])
            await walk
        finally:
            walk.cancel()
            await asyncio.gather(walk, return_exceptions=True)
        hits = [hit for stream in streams for hit in stream.files]
        visible = await self._confirm_visible(listing, {hit.path for hit in hits})
        await asyncio.to_thread(
            search_hits.add_context, self.policy, [h for h in hits if h.path in visible]
        )
        return hits, visible

    async def _confirm_visible(self, listing: Listing, paths: set[str]) -> frozenset[str]:
        """The cached list decides for known paths; git is asked about the others (files
        created since the list was taken), so a new file is found and an ignored one is not."""
        unknown = sorted(paths - listing.visible)
        if not unknown:
            return listing.visible
        if len(unknown) > MAX_LIST_FILES:
            self.listings.invalidate()
            return (await self.listings.current()).visible
        return listing.visible | frozenset(await self.repo.visible_files(*unknown))

    async def _tracked_ignored(
        self, listing: Listing, rel_dir: str, wanted: Callable[[str], bool]
    ) -> list[str]:
        """Tracked files under rel_dir that match an ignore rule, safe to name explicitly."""
        prefix = rel_dir + "/" if rel_dir else ""
        extra = [
            f
            for f in listing.tracked_ignored
            if f.startswith(prefix) and wanted(f) and not self.policy.is_sensitive(f)
        ]
        return await asyncio.to_thread(lambda: [f for f in extra if self.policy.regular_file(f)])

    async def _search_git_grep(
        self, pattern: str, glob: str | None, rel_dir: str, regex: re.Pattern[str] | None
    ) -> tuple[list[FileHits], frozenset[str]]:
        """Without ripgrep: `git grep --untracked` searches git's visible files, except tracked
        files that match an ignore rule, which a second, tracked-only `git grep` names."""
        wanted = glob_filter(glob)
        budget = Budget()
        files: dict[str, FileHits] = {}
        await run_git_grep(
            self.root, ["--untracked", "--", rel_dir or "."], pattern, wanted, budget, files, regex
        )
        extra = await self._tracked_ignored(await self.listings.current(), rel_dir, wanted)
        if extra:
            specs = [f":(literal){f}" for f in extra]
            await run_git_grep(self.root, ["--", *specs], pattern, wanted, budget, files, regex)
        hits = list(files.values())
        await asyncio.to_thread(search_hits.add_context, self.policy, hits)
        return hits, frozenset(files)
