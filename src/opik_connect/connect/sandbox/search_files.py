"""SearchFiles: ripgrep and the secret index narrow the files, git decides visibility, the scan
answers from the redacted view (see search_scan)."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from opik_connect.connect.sandbox.linear_regex import compile_line_search
from opik_connect.connect.sandbox.listing import Listing, ListingCache
from opik_connect.connect.sandbox.malloc_tuning import fix_malloc_thresholds
from opik_connect.connect.sandbox.packed_paths import PackedPaths
from opik_connect.connect.sandbox.path_globs import compile_glob
from opik_connect.connect.sandbox.policy import SENSITIVE_NAME_GLOBS, PathPolicy
from opik_connect.connect.sandbox.repo_files import RepoFiles
from opik_connect.connect.sandbox.ripgrep import glob_literal, rg_files_with_matches
from opik_connect.connect.sandbox.search_scan import out_of_time, scan_files
from opik_connect.connect.sandbox.search_secrets import SecretIndex
from opik_connect.connect.sandbox.secret_redaction import SECRET_CANDIDATE
from opik_connect.protocol import BridgeError, ErrorCode, SearchFilesResult

MAX_LIST_FILES = 1000
SEARCH_TIMEOUT_S = 30.0
NARROWING_SHARE = 0.8
"""Of the time limit, what finding the candidate files may take: the rest is for reading them,
so a search that reaches its limit still answers with what the files found so far hold."""
MAX_SKIP_ARG_BYTES = 1 << 20
"""The most the paths ripgrep must skip may take on its command line (the kernel allows a few
MiB in all): beyond it, every visible file is read and redacted instead."""


def glob_filter(glob: str | None) -> Callable[[str], bool]:
    """ripgrep's meaning of a glob: without '/', it matches the file name at any depth."""
    if not glob:
        return lambda _path: True
    negate = glob.startswith("!")
    body = glob[1:] if negate else glob
    matcher = compile_glob(body.lstrip("/") if "/" in body else "**/" + body, field="glob")
    return lambda path: (matcher.match(path) is not None) != negate


async def _none() -> tuple[list[str], bool]:
    return [], True


async def _done_by(pending: asyncio.Future[None], until: float) -> bool:
    """Whether the watcher applied the changes a search waits for before `until`. Until then,
    the secret index may not know a file that gained a secret, and ripgrep would read it raw:
    past it, the search answers as when the index is not current (nothing found, truncated)."""
    done, _ = await asyncio.wait({pending}, timeout=max(until - time.monotonic(), 0))
    return bool(done)


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
        """The first page at once; at the time limit, what was found so far (truncated).
        With a watcher running, the changes queued to it when the search starts are applied
        first (later ones are not waited for)."""
        regex = compile_line_search(pattern)
        wanted = glob_filter(glob)
        started = time.monotonic()
        deadline = started + SEARCH_TIMEOUT_S
        narrowed_by = started + NARROWING_SHARE * SEARCH_TIMEOUT_S
        settled = self.listings.index.settled
        pending = settled() if settled is not None else None
        try:
            async with asyncio.timeout(SEARCH_TIMEOUT_S):
                if pending is not None and not await _done_by(pending, narrowed_by):
                    return out_of_time()
                listing = await self.listings.current()
                candidates, complete = await self._candidates(
                    pattern, glob, rel_dir, listing, wanted, narrowed_by
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

    async def prepare(self) -> None:
        """Build the secret index now: on a large tree the first build reads and redacts every
        file the secret pass finds (7.5 s for 5,700 files of the bench repo), which the first
        search would otherwise wait for."""
        if self.rg:
            await self._index_current(await self.listings.current(), math.inf)

    async def _candidates(
        self,
        pattern: str,
        glob: str | None,
        rel_dir: str,
        listing: Listing,
        wanted: Callable[[str], bool],
        until: float,
    ) -> tuple[set[str], bool]:
        """Files that may hold a match, and whether the list is complete (False: `until` came
        first). ripgrep never reads a file whose text redaction changes: it searches the others
        as they are and those files' redacted copies (the shadow tree), so which files are
        candidates, and how long finding them takes, is a function of the redacted view (a
        pattern that matches a secret's raw value finds and costs what any other does). Every
        candidate is then read and redacted afresh. Until the secret index is current no file
        is a candidate (the answer is truncated); without rg, or when rg rejects the pattern,
        every visible file under rel_dir is."""
        if self.rg:
            if not await self._index_current(listing, until):
                return set(), False
            held = self.secrets.held
            if sum(len(path) + 10 for path in held) > MAX_SKIP_ARG_BYTES:
                return set(listing.visible.under(rel_dir)), True
            extra = [
                f for f in await self._tracked_ignored(listing, rel_dir, wanted) if f not in held
            ]
            targets = [] if rel_dir in held else [rel_dir or ".", *extra]  # rg reads a named
            raw, redacted = await asyncio.gather(  # file whatever the globs say
                self._rg_files([pattern], glob, targets, until, skip=held) if targets else _none(),
                self._rg_shadows(pattern, glob, rel_dir, until),
            )
            if raw is not None and redacted is not None:
                names, complete = raw
                copies = {p for p in redacted[0] if held.get(p) is not None}
                return set(names) | copies, complete and redacted[1]
        return set(listing.visible.under(rel_dir)), True

    async def _index_current(self, listing: Listing, until: float) -> bool:
        """The secret index brought up to date for `listing`, by `until` (False: not by then)."""
        find = lambda targets: self._rg_secrets(targets, listing)  # noqa: E731
        return await self.secrets.refresh(listing.visible, until, find)

    async def _rg_secrets(self, targets: list[str] | None, listing: Listing) -> list[str]:
        """The files where SECRET_CANDIDATE matches: among `targets`, or (None) in the root."""
        if targets is None:
            targets = [".", *await self._tracked_ignored(listing, "", lambda _path: True)]
        found = await self._rg_files([SECRET_CANDIDATE], None, targets, math.inf)
        if found is None:
            raise BridgeError(ErrorCode.INTERNAL, "ripgrep could not run the secret pre-filter")
        return found[0]

    async def _rg_files(
        self,
        regexps: list[str],
        glob: str | None,
        targets: list[str],
        until: float,
        *,
        skip: Iterable[str] = (),
    ) -> tuple[list[str], bool] | None:
        """The files under `targets` where rg finds any of `regexps`, and whether it finished
        by `until`; None when rg rejects a regex. The walk keeps to git's view (ignore files,
        hidden files included) and skips sensitive and denied paths and the paths in `skip`;
        named files are searched even when an ignore rule matches them. A search's rg has no
        --max-filesize (it stats every file: 15% of a search on a large tree): the index holds
        the files too large to answer from, so `skip` has them."""
        cmd = [
            *self._rg_command("--no-ignore-dot", glob),
            *(f"--glob=!/{glob_literal(path)}" for path in skip),
            *(f"--regexp={regexp}" for regexp in regexps),
            "--",
        ]
        return await rg_files_with_matches([*cmd, *targets], self.root, until)

    async def _rg_shadows(
        self, pattern: str, glob: str | None, rel_dir: str, until: float
    ) -> tuple[list[str], bool] | None:
        """The files whose redacted copies rg finds the pattern in (the shadow tree holds
        nothing else, so no ignore rule applies there)."""
        root = self.secrets.shadow_root
        target = rel_dir or "."
        held = self.secrets.held
        if root is None or not any(held.values()) or not (root / target).exists():
            return [], True  # no copy there: no ripgrep to start
        cmd = [*self._rg_command("--no-ignore", glob), "--threads=1", f"--regexp={pattern}"]
        cmd += ["--", target]  # one thread: the tree's search, running meanwhile, has the cores
        return await rg_files_with_matches(cmd, root, until)

    def _rg_command(self, ignore_rules: str, glob: str | None) -> list[str]:
        """What both searches share: file names only, hidden files, `glob` (the excludes come
        after it: rg's last matching glob decides), never a sensitive or denied path."""
        assert self.rg is not None
        cmd = [self.rg, "--no-config", "--files-with-matches", "--null", "--hidden", ignore_rules]
        cmd += ["--no-messages", "--crlf", *([f"--glob={glob}"] if glob else [])]
        for name in SENSITIVE_NAME_GLOBS:
            cmd += ["--iglob", f"!{name}"]
        for deny in self.policy.deny_globs:
            cmd += ["--glob", f"!{deny}"]
        return cmd

    async def _confirm_visible(self, listing: Listing, paths: set[str]) -> PackedPaths:
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
