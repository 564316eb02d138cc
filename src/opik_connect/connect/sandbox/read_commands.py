"""The read commands the daemon serves (ReadFile, ListFiles, SearchFiles), inside the sandbox.

Semantics follow Opik's bridge (names, limits, error codes); visibility is git's view minus the
sensitive paths, and every byte of file text passes secret redaction before it is returned.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from opik_connect.config import ProjectConfig
from opik_connect.connect.command_handlers import InlineHandler
from opik_connect.connect.sandbox.file_window import Window, fit_content, read_window
from opik_connect.connect.sandbox.list_entries import compile_fnmatch, list_entries
from opik_connect.connect.sandbox.listing import ListingCache
from opik_connect.connect.sandbox.policy import PathPolicy, normalize_relative
from opik_connect.connect.sandbox.repo_files import RepoFiles
from opik_connect.connect.sandbox.ripgrep import find_ripgrep
from opik_connect.connect.sandbox.search_files import FileSearch
from opik_connect.connect.sandbox.secret_redaction import redact
from opik_connect.connect.sandbox.visible_index import VisibleIndex
from opik_connect.git_runner import StartedGit
from opik_connect.protocol import (
    BridgeError,
    ErrorCode,
    ListFilesArgs,
    ListFilesResult,
    ReadFileArgs,
    ReadFileResult,
    RootSummary,
    SearchFilesArgs,
    SearchFilesResult,
)
from opik_connect.protocol.reads import MAX_READ_LINES, MAX_SEARCH_PATTERN_CHARS

INLINE_READ_BYTES = 256 * 1024
"""Smaller files are opened and read on the loop: a dozen local syscalls cost less than a
worker-thread hop (a FIFO cannot block: it is refused before open, and opens are O_NONBLOCK)."""

INLINE_LIST_FILES = 5000
"""ListFiles deeper than one level runs on the loop up to this many visible files; above, in
a worker thread (depth 1 skips whole subtrees, so it stays cheap at any size)."""

Handler = Callable[[Any], Awaitable[BaseModel]]


class Sandbox:
    """The read side of the bridge for one root: git visibility, path policy and redaction."""

    def __init__(
        self,
        root: Path,
        repo: RepoFiles,
        policy: PathPolicy,
        rg: str | None,
        first_listing: StartedGit | None = None,
    ) -> None:
        self.root = root
        self.repo = repo
        self.policy = policy
        self.rg = rg
        self.index = VisibleIndex(repo, policy, first_listing)
        """What ListFiles shows, kept current by the watcher."""
        self.listings = ListingCache(repo, self.index)
        self._search = FileSearch(root, repo, policy, self.listings, rg)

    @classmethod
    async def open(
        cls,
        root: Path,
        config: ProjectConfig,
        *,
        ripgrep: str | None = "auto",
        first_listing: StartedGit | None = None,
    ) -> Sandbox:
        """Refuses (NotAGitRepository) a root outside a git work tree. `ripgrep=None` forces
        the `git grep` fallback; "auto" looks next to sys.executable, then on PATH.
        first_listing: `RepoFiles.start_listing(root)` already running (root the top level)."""
        root = Path(await asyncio.to_thread(os.path.realpath, root))
        repo = await RepoFiles.open(root)
        rg = find_ripgrep() if ripgrep == "auto" else ripgrep
        return cls(root, repo, PathPolicy(root, config.deny), rg, first_listing)

    def invalidate(self) -> None:
        """Forget the cached file lists (the watcher calls this when files change)."""
        self.listings.invalidate()

    async def watches_up(self, directories: list[str]) -> None:
        """The watcher watches `directories` from now on. What changed before is in no event:
        the file index catches up on it, and the secret index, built (if at all) with no
        watcher, is rebuilt once, then trusted while watched."""
        await self.index.watches_up(directories)
        self._search.secrets.stale()
        self.invalidate()

    async def files_changed(self, paths: list[str]) -> None:
        """The watcher's batch (git-visible paths): the index re-checks only these paths, then
        the search lists are taken again (from the updated index)."""
        await self.index.apply(paths)
        self._search.secrets.forget(paths)
        self.invalidate()

    def changes_lost(self) -> None:
        """The watcher missed changes: every list and the search's secret index are rebuilt."""
        self.index.stale()
        self.invalidate()
        self._search.secrets.stale()

    async def summary(self) -> RootSummary:
        """The hello's root summary: visible file count, branch and HEAD."""
        files, (branch, head) = await asyncio.gather(
            self.index.files(), self.repo.branch_and_head()
        )
        return RootSummary(root=str(self.root), visible_files=len(files), branch=branch, head=head)

    async def _require_visible(self, rel: str) -> None:
        if rel in (await self.listings.current()).visible:
            return
        found = await self.repo.visible_files(rel)
        if rel in found:
            self.invalidate()
            return
        if any(f.startswith(rel + "/") for f in found):
            raise BridgeError(
                ErrorCode.FILE_NOT_FOUND, "not a file: a directory; use ListFiles", path=rel
            )
        raise BridgeError(ErrorCode.FILE_NOT_FOUND, "file not found (or ignored by git)", path=rel)

    # --- ReadFile -------------------------------------------------------------------------------

    async def read_file(self, args: ReadFileArgs) -> ReadFileResult:
        rel = self._read_path(args)
        await self._require_visible(rel)
        limit = min(args.limit, MAX_READ_LINES)
        opened = self.policy.open_file(rel)
        try:
            if opened.size <= INLINE_READ_BYTES:
                window = read_window(opened.fd, args.offset, limit, rel, opened.size)
            else:
                window = await asyncio.to_thread(
                    read_window, opened.fd, args.offset, limit, rel, opened.size
                )
        finally:
            os.close(opened.fd)
        real_path = opened.real_path
        if real_path != rel:
            await self._require_visible(real_path)
        return _read_result(args, window)

    def read_file_now(self, args: ReadFileArgs) -> ReadFileResult | None:
        """read_file without awaiting, when git's cached list holds the path (and its target)
        and the file is small enough to read on the loop; None when read_file must run. Its
        answer, or its error, is the one read_file gives."""
        listing = self.listings.cached()
        if listing is None:
            return None
        rel = self._read_path(args)
        if rel not in listing.visible:
            return None
        opened = self.policy.open_file(rel)
        try:
            if opened.size > INLINE_READ_BYTES:
                return None
            limit = min(args.limit, MAX_READ_LINES)
            window = read_window(opened.fd, args.offset, limit, rel, opened.size)
        finally:
            os.close(opened.fd)
        if opened.real_path != rel and opened.real_path not in listing.visible:
            return None
        return _read_result(args, window)

    def _read_path(self, args: ReadFileArgs) -> str:
        """The requested path, checked before anything is looked up or opened."""
        rel = normalize_relative(args.path)
        if not args.path:
            raise BridgeError(ErrorCode.PATH_TRAVERSAL, "empty path", path="")
        if not rel:
            raise BridgeError(ErrorCode.FILE_NOT_FOUND, "not a file: the root directory", path=".")
        self.policy.check_sensitive(rel)
        return rel

    # --- ListFiles ------------------------------------------------------------------------------

    def _directory(self, path: str, *, allow_file: bool = False) -> str:
        """Where a listing or search starts, as its real path relative to the root: a path
        through a symlink is replaced by its target when that stays inside, else refused."""
        rel = normalize_relative(path)
        if not rel:
            return rel
        self.policy.check_sensitive(rel)
        root = str(self.policy.root)
        real = os.path.realpath(os.path.join(root, rel))
        if real != root and not real.startswith(root + "/"):
            raise BridgeError(ErrorCode.PATH_TRAVERSAL, "path leads outside the root", path=rel)
        rel = real[len(root) + 1 :]
        self.policy.check_sensitive(rel)
        if not (os.path.isdir(real) or (allow_file and os.path.isfile(real))):
            raise BridgeError(ErrorCode.FILE_NOT_FOUND, "no such directory", path=rel)
        return rel

    async def list_files(self, args: ListFilesArgs) -> ListFilesResult:
        rel_dir = self._directory(args.path)
        pattern = compile_fnmatch(args.pattern) if args.pattern else None
        files = await self.index.files()
        if args.depth == 1 or len(files) <= INLINE_LIST_FILES:
            return list_entries(files, rel_dir, args.depth, pattern)
        # A deep listing of a big repo walks many files: off the loop, on them as a list.
        return await asyncio.to_thread(
            lambda: list_entries(files.as_list(), rel_dir, args.depth, pattern)
        )

    # --- SearchFiles ----------------------------------------------------------------------------

    async def search_files(self, args: SearchFilesArgs) -> SearchFilesResult:
        if not args.pattern or len(args.pattern) > MAX_SEARCH_PATTERN_CHARS:
            raise BridgeError(
                ErrorCode.MATCH_NOT_FOUND,
                f"pattern must be a regex of 1-{MAX_SEARCH_PATTERN_CHARS} characters",
                field="pattern",
            )
        if "\0" in args.pattern or "\n" in args.pattern:
            raise BridgeError(
                ErrorCode.SEARCH_FAILED, "pattern must be one line, without NUL", field="pattern"
            )
        if args.glob is not None and "\0" in args.glob:
            raise BridgeError(ErrorCode.INVALID_ARGS, "glob contains a NUL byte")
        rel_dir = self._directory(args.path, allow_file=True)
        return await self._search.search(args.pattern, args.glob, rel_dir)

    async def prepare_search(self) -> None:
        """Build what a search needs ahead of the first one (see FileSearch.prepare)."""
        await self._search.prepare()


def _read_result(args: ReadFileArgs, window: Window) -> ReadFileResult:
    """The window redacted, cut to what one answer holds, and described."""
    content, redactions = redact(
        "".join(window.pieces), inside_private_key=window.key_open_at_start
    )
    content, cut = fit_content(content)
    returned_end = min(args.offset + window.count, window.total_lines)
    return ReadFileResult(
        content=content,
        total_lines=window.total_lines,
        truncated=cut or window.line_cut or returned_end < window.total_lines,
        encoding="utf-8",
        redactions=redactions,
    )


def read_handlers(sandbox: Sandbox) -> dict[str, Handler]:
    """Command name -> async handler(args model) -> result model, for the link to dispatch
    (ReadFile answers at once when it can: see InlineHandler)."""
    return {
        "ReadFile": InlineHandler(sandbox.read_file, sandbox.read_file_now),
        "ListFiles": sandbox.list_files,
        "SearchFiles": sandbox.search_files,
    }
