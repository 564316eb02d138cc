"""SearchFiles: ripgrep and the secret index narrow the files, git decides visibility, the scan
answers from the redacted view (see search_scan)."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

from opik_connect.connect.sandbox.linear_regex import LinearRegex, compile_line_search
from opik_connect.connect.sandbox.listing import Listing, ListingCache, VisiblePaths
from opik_connect.connect.sandbox.malloc_tuning import fix_malloc_thresholds
from opik_connect.connect.sandbox.path_globs import compile_glob
from opik_connect.connect.sandbox.policy import SENSITIVE_NAME_GLOBS, PathPolicy
from opik_connect.connect.sandbox.repo_files import RepoFiles
from opik_connect.connect.sandbox.ripgrep import rg_files_with_matches
from opik_connect.connect.sandbox.search_scan import out_of_time, scan_files
from opik_connect.connect.sandbox.search_secrets import SecretIndex
from opik_connect.connect.sandbox.secret_redaction import SECRET_CANDIDATE
from opik_connect.protocol import BridgeError, ErrorCode, SearchFilesResult

MAX_LIST_FILES = 1000
SEARCH_TIMEOUT_S = 30.0
NARROWING_SHARE = 0.8
"""Of the time limit, what finding the candidate files may take: the rest is for reading them,
so a search that reaches its limit still answers with what the files found so far hold."""


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
        self.secrets = SecretIndex(policy, lambda: listings.index.watched)
        """The files redaction changes, with their redacted lines (the watcher keeps it current)."""
        fix_malloc_thresholds()  # what a search over a large tree frees goes back to the system

    async def search(self, pattern: str, glob: str | None, rel_dir: str) -> SearchFilesResult:
        """The first page at once; at the time limit, what was found so far (truncated)."""
        regex = compile_line_search(pattern)
        wanted = glob_filter(glob)
        started = time.monotonic()
        deadline = started + SEARCH_TIMEOUT_S
        try:
            async with asyncio.timeout(SEARCH_TIMEOUT_S):
                listing = await self.listings.current()
                candidates, complete = await self._candidates(
                    pattern,
                    regex,
                    glob,
                    rel_dir,
                    listing,
                    wanted,
                    started + NARROWING_SHARE * SEARCH_TIMEOUT_S,
                )
                visible = await self._confirm_visible(listing, candidates)
        except TimeoutError:
            return out_of_time()
        paths = [
            p for p in candidates if p in visible and wanted(p) and not self.policy.is_sensitive(p)
        ]
        stop = threading.Event()
        try:
            result = await asyncio.to_thread(
                scan_files, self.policy, paths, regex, visible, stop, deadline=deadline
            )
        finally:
            stop.set()
        return result if complete else result.model_copy(update={"truncated": True})

    async def _candidates(
        self,
        pattern: str,
        regex: LinearRegex,
        glob: str | None,
        rel_dir: str,
        listing: Listing,
        wanted: Callable[[str], bool],
        until: float,
    ) -> tuple[set[str], bool]:
        """Files that may hold a match, and whether the list is complete (False: `until` came
        first). Two sources: the files where rg finds the pattern in the raw text (a line that
        redaction leaves alone matches there as it is), and the files where the secret index
        holds a redacted line the pattern matches. Every candidate is then read and redacted
        afresh, so the answer holds exactly what the redacted files hold. Without rg, or when
        rg rejects the pattern, every visible file under rel_dir is a candidate."""
        prefix = rel_dir + "/" if rel_dir else ""
        if self.rg:
            extra = await self._tracked_ignored(listing, rel_dir, wanted)
            found, (indexed, matching) = await asyncio.gather(
                self._rg_files([pattern], glob, [rel_dir or ".", *extra], until),
                self._index_hits(regex, listing, until),
            )
            if found is not None:
                names, complete = found
                hits = {p for p in matching if (p == rel_dir or p.startswith(prefix)) and wanted(p)}
                return set(names) | hits, complete and indexed
        return set(listing.visible.under(rel_dir)), True

    async def _index_hits(
        self, regex: LinearRegex, listing: Listing, until: float
    ) -> tuple[bool, list[str]]:
        """Whether the secret index is current by `until`, and the files it holds where
        `regex` matches a redacted line (worked out while rg runs)."""
        indexed = await self.secrets.refresh(
            listing.visible, until, lambda targets: self._rg_secrets(targets, listing)
        )
        return indexed, await self.secrets.files_matching(regex)

    async def _rg_secrets(self, targets: list[str] | None, listing: Listing) -> list[str]:
        """The files where SECRET_CANDIDATE matches: among `targets`, or (None) in the root."""
        if targets is None:
            targets = [".", *await self._tracked_ignored(listing, "", lambda _path: True)]
        found = await self._rg_files([SECRET_CANDIDATE], None, targets, math.inf)
        if found is None:
            raise BridgeError(ErrorCode.INTERNAL, "ripgrep could not run the secret pre-filter")
        return found[0]

    async def _rg_files(
        self, regexps: list[str], glob: str | None, targets: list[str], until: float
    ) -> tuple[list[str], bool] | None:
        """The files under `targets` where rg finds any of `regexps`, and whether it finished
        by `until`; None when rg rejects a regex. The walk keeps to git's view (ignore files,
        hidden files included) and skips sensitive and denied paths; named files are searched
        even when an ignore rule matches them."""
        assert self.rg is not None
        excludes: list[str] = []
        for name in SENSITIVE_NAME_GLOBS:
            excludes += ["--iglob", f"!{name}"]
        for deny in self.policy.deny_globs:
            excludes += ["--glob", f"!{deny}"]
        cmd = [
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
            *(f"--regexp={regexp}" for regexp in regexps),
            "--",
        ]
        return await rg_files_with_matches([*cmd, *targets], self.root, until)

    async def _confirm_visible(self, listing: Listing, paths: set[str]) -> VisiblePaths:
        """The cached list decides for known paths; git is asked about the others (files
        created since the list was taken), so a new file is found and an ignored one is not."""
        unknown = sorted(p for p in paths if p not in listing.visible)
        if not unknown:
            return listing.visible
        if len(unknown) > MAX_LIST_FILES:
            self.listings.invalidate()
            return (await self.listings.current()).visible
        return listing.visible.with_paths(await self.repo.visible_files(*unknown))

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
        if not extra:
            return []
        return await asyncio.to_thread(lambda: [f for f in extra if self.policy.regular_file(f)])
