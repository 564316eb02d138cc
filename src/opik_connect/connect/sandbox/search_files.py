"""SearchFiles: ripgrep narrows the files, git decides visibility, the scan answers from the
redacted view (see search_scan)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

from opik_connect.connect.sandbox.linear_regex import compile_line_search
from opik_connect.connect.sandbox.listing import Listing, ListingCache
from opik_connect.connect.sandbox.policy import SENSITIVE_NAME_GLOBS, PathPolicy, compile_glob
from opik_connect.connect.sandbox.repo_files import RepoFiles
from opik_connect.connect.sandbox.ripgrep import rg_files_with_matches
from opik_connect.connect.sandbox.search_scan import out_of_time, scan_files
from opik_connect.connect.sandbox.secret_redaction import SECRET_CANDIDATE
from opik_connect.protocol import SearchFilesResult

MAX_LIST_FILES = 1000
SEARCH_TIMEOUT_S = 30.0


def glob_filter(glob: str | None) -> Callable[[str], bool]:
    """ripgrep's meaning of a glob: without '/', it matches the file name at any depth."""
    if not glob:
        return lambda _path: True
    negate = glob.startswith("!")
    body = glob[1:] if negate else glob
    matcher = compile_glob(body.lstrip("/") if "/" in body else "**/" + body, field="glob")
    return lambda path: (matcher.match(path) is not None) != negate


class FileSearch:
    """Runs one root's searches: candidate files, git's verdict on what is visible, the scan."""

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
        """The first page at once; at the time limit, what was found so far (truncated)."""
        regex = compile_line_search(pattern)
        wanted = glob_filter(glob)
        deadline = time.monotonic() + SEARCH_TIMEOUT_S
        try:
            async with asyncio.timeout(SEARCH_TIMEOUT_S):
                listing = await self.listings.current()
                candidates = await self._candidates(pattern, glob, rel_dir, listing, wanted)
                visible = await self._confirm_visible(listing, set(candidates))
        except TimeoutError:
            return out_of_time()
        paths = [
            p for p in candidates if p in visible and wanted(p) and not self.policy.is_sensitive(p)
        ]
        stop = threading.Event()
        try:
            return await asyncio.to_thread(
                scan_files, self.policy, paths, regex, visible, stop, deadline=deadline
            )
        finally:
            stop.set()

    async def _candidates(
        self,
        pattern: str,
        glob: str | None,
        rel_dir: str,
        listing: Listing,
        wanted: Callable[[str], bool],
    ) -> list[str]:
        """Files that may hold a match: those where rg finds the pattern or a secret rule
        (SECRET_CANDIDATE), plus tracked files that match an ignore rule. Without rg, every
        visible file under rel_dir. A file where no secret rule matches reads the same redacted
        as raw, so rg's raw verdict on the pattern is the redacted view's; every other file is
        scanned in its redacted form, whatever rg made of the pattern there. Either way each
        file adds to the answer exactly what its redacted text holds."""
        prefix = rel_dir + "/" if rel_dir else ""
        under = [f for f in listing.visible if f == rel_dir or f.startswith(prefix)]
        if not self.rg:
            return under
        excludes: list[str] = []
        for name in SENSITIVE_NAME_GLOBS:
            excludes += ["--iglob", f"!{name}"]
        for deny in self.policy.deny_globs:
            excludes += ["--glob", f"!{deny}"]
        base = [
            self.rg,
            "--no-config",
            "--files-with-matches",
            "--null",
            "--hidden",
            "--no-ignore-dot",
            "--no-messages",
            "--crlf",
            *([f"--glob={glob}"] if glob else []),
            *excludes,
            f"--regexp={pattern}",
            f"--regexp={SECRET_CANDIDATE}",
            "--",
        ]
        extra = await self._tracked_ignored(listing, rel_dir, wanted)
        found = await asyncio.gather(
            rg_files_with_matches([*base, rel_dir or "."], self.root),
            *([rg_files_with_matches([*base, *extra], self.root)] if extra else []),
        )
        if any(names is None for names in found):
            return under
        return [name for names in found if names for name in names]

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
