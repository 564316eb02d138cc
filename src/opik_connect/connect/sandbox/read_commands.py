"""The read commands the daemon serves (ReadFile, ListFiles, SearchFiles), inside the sandbox.

Semantics follow Opik's bridge (names, limits, error codes); visibility is git's view minus the
sensitive paths, and every byte of file text passes secret redaction before it is returned.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from opik_connect.config import ProjectConfig
from opik_connect.connect.child_process import child_process
from opik_connect.connect.sandbox.policy import (
    SENSITIVE_NAME_GLOBS,
    PathPolicy,
    compile_glob,
    normalize_relative,
)
from opik_connect.connect.sandbox.repo_files import RepoFiles
from opik_connect.connect.sandbox.secret_redaction import (
    might_contain_secret,
    private_key_open_at_end,
    redact,
)
from opik_connect.connect.sandbox.visible_index import VisibleIndex
from opik_connect.git_runner import git_process
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
    SearchMatch,
)

MAX_LIST_FILES = 1000
MAX_SEARCH_MATCHES = 100
SEARCH_CONTEXT_LINES = 2
SEARCH_TIMEOUT_S = 30.0
BINARY_SNIFF_BYTES = 8192
READ_CHUNK_BYTES = 1 << 20
MAX_LINE_BYTES = 16 * 1024
"""A longer line is cut (minified files); the cut is marked so Ollie knows."""
MAX_CONTENT_CHARS = 512 * 1024
"""ReadFile stops a window early past this, so a result always fits in one frame."""
VISIBLE_CACHE_TTL_S = 5.0
"""ReadFile trusts git's file list for this long, so a read costs no git process."""
LINE_CUT_MARK = " [line truncated]"
INLINE_READ_BYTES = 256 * 1024
"""Smaller files are opened and read on the loop: a dozen local syscalls cost less than a
worker-thread hop (a FIFO cannot block: it is refused before open, and opens are O_NONBLOCK)."""
_RG_READ_BYTES = 1 << 18

Handler = Callable[[Any], Awaitable[BaseModel]]


def find_ripgrep() -> str | None:
    """`rg` from the ripgrep wheel next to our interpreter first, else on PATH."""
    beside = Path(sys.executable).parent / "rg"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("rg")


@dataclass
class _Window:
    pieces: list[str]
    """The window's text in order: single lines, or runs of whole lines decoded at once."""
    count: int
    """How many lines the pieces hold."""
    total_lines: int
    key_open_at_start: bool


def _read_window(fd: int, offset: int, limit: int, path: str) -> _Window:
    """Stream the file once: validate UTF-8, count lines, keep only the requested window.

    Memory stays bounded by the chunk size and the window, whatever the file size.
    """
    end = offset + limit
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    pieces: list[str] = []
    count = 0
    current = bytearray()
    cut = False
    chars = 0
    full = False
    line_no = 0
    key_open = False
    key_tail = b""
    seen_bytes = False
    ends_with_newline = True

    def finish_line(with_newline: bool) -> None:
        nonlocal current, cut, chars, full, count
        text = current.decode("utf-8", errors="ignore")
        if cut:
            text += LINE_CUT_MARK
        pieces.append(text + ("\n" if with_newline else ""))
        count += 1
        chars += len(pieces[-1])
        full = chars >= MAX_CONTENT_CHARS
        current = bytearray()
        cut = False

    while data := os.read(fd, READ_CHUNK_BYTES):
        if not seen_bytes and b"\0" in data[:BINARY_SNIFF_BYTES]:
            raise BridgeError(ErrorCode.BINARY_FILE, "binary file (NUL byte)", path=path)
        try:
            decoder.decode(data)
        except UnicodeDecodeError as exc:
            raise BridgeError(ErrorCode.BINARY_FILE, "file is not UTF-8 text", path=path) from exc
        seen_bytes = True
        ends_with_newline = data.endswith(b"\n")
        pos = 0
        size = len(data)
        while pos < size:
            if line_no < offset:
                need = offset - line_no
                here = data.count(b"\n", pos)
                if here < need:
                    line_no += here
                    stop = size
                else:
                    nl = pos - 1
                    for _ in range(need):
                        nl = data.find(b"\n", nl + 1)
                    line_no = offset
                    stop = nl + 1
                segment = data[pos:stop]
                key_open = private_key_open_at_end(key_tail + segment, key_open)
                key_tail = segment[-96:]
                pos = stop
                continue
            if line_no >= end or full:
                line_no += data.count(b"\n", pos)
                pos = size
                continue
            if not current and not cut:
                taken = _whole_lines(data, pos, end - line_no, MAX_CONTENT_CHARS - chars)
                if taken is not None:
                    block, got, pos = taken
                    pieces.append(block)
                    count += got
                    chars += len(block)
                    full = chars >= MAX_CONTENT_CHARS
                    line_no += got
                    continue
            nl = data.find(b"\n", pos)
            stop = size if nl == -1 else nl + 1
            piece = data[pos : stop - 1 if nl != -1 else stop]
            room = MAX_LINE_BYTES - len(current)
            if len(piece) > room:
                piece = piece[: max(room, 0)]
                cut = True
            current += piece
            pos = stop
            if nl != -1:
                finish_line(True)
                line_no += 1
    with contextlib.suppress(UnicodeDecodeError):
        decoder.decode(b"", final=True)
    total = line_no + (1 if seen_bytes and not ends_with_newline else 0)
    if seen_bytes and not ends_with_newline and offset <= line_no < end and not full:
        finish_line(False)
    return _Window(pieces=pieces, count=count, total_lines=total, key_open_at_start=key_open)


def _whole_lines(data: bytes, pos: int, want: int, room: int) -> tuple[str, int, int] | None:
    """Up to `want` complete lines from `pos` in one decode, as (text, lines, next pos); None
    when a line is too long, the content cap would be passed, or no newline follows (the
    line-by-line path handles those)."""
    got = data.count(b"\n", pos)
    if got <= want:  # the window runs past this chunk: take every line in it
        nl = data.rfind(b"\n", pos)
    else:
        got, nl = want, pos - 1
        for _ in range(want):
            nl = data.find(b"\n", nl + 1)
    if not got or nl + 1 - pos > room:
        return None
    block = data[pos : nl + 1].decode("utf-8")
    if len(block) > MAX_LINE_BYTES and max(map(len, block.split("\n"))) > MAX_LINE_BYTES:
        return None
    return block, got, nl + 1


@dataclass(frozen=True)
class _Listing:
    """git's answer at one moment: visible files, and tracked files matching an ignore rule."""

    visible: frozenset[str]
    tracked_ignored: tuple[str, ...]


@dataclass
class _Budget:
    """How many match lines all streams of one search have kept in full so far, and whether a
    stream stopped before its end (a full first page, or the time limit)."""

    stored: int = 0
    deadline: float = float("inf")
    """loop.time() at which the search stops reading and returns what it has."""
    cut: bool = False
    """The total counts the files read so far only: a lower bound, so the result is truncated."""

    @property
    def full(self) -> bool:
        return self.stored >= MAX_SEARCH_MATCHES

    def expired(self) -> bool:
        """Checked between reads too: a read of output already buffered never yields to the
        loop, so the timeout alone would not fire while rg's output keeps up."""
        return asyncio.get_running_loop().time() >= self.deadline


@dataclass
class _FileHits:
    """One file's part of a search, kept until its end says whether it is visible text."""

    path: str
    lines: list[tuple[int, str, bool]] = field(default_factory=list)
    matched_lines: int = 0
    dropped: int = 0
    bad: bool = False


def _strip_eol(text: str) -> str:
    return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text


def _hides_only_secret(line: str, regex: re.Pattern[str] | None) -> bool:
    """True when a match line matched only inside a secret: returning it (or even counting it)
    would let a caller guess the secret one character at a time."""
    redacted, count = redact(line)
    return count > 0 and (regex is None or regex.search(redacted) is None)


_RG_BEGIN = b'{"type":"begin"'
_RG_BEGIN_TEXT = b'{"type":"begin","data":{"path":{"text":'
_RG_LINE_TEXT = b'"lines":{"text":'


def _json_line_text(raw: bytes) -> str:
    """The still JSON-escaped line text of an rg match record, without decoding the record."""
    start = raw.find(_RG_LINE_TEXT)
    end = raw.find(b'},"line_number"', start)
    if start == -1 or end == -1:
        return raw.decode("utf-8", "replace")
    return raw[start + len(_RG_LINE_TEXT) : end].decode("utf-8", "replace")


class _RgStream:
    """Parses one `rg --json` stream; matches past the budget are counted without being decoded.
    Context lines come from the files afterwards, for the kept matches only."""

    def __init__(self, budget: _Budget, regex: re.Pattern[str] | None) -> None:
        self.budget = budget
        self.regex = regex
        self.files: list[_FileHits] = []
        self.current: _FileHits | None = None

    @property
    def done(self) -> bool:
        """The first page is full and its last file ended: reading on would only count.
        An exact total cost a full scan (386 ms against 12 ms for the first page of a common
        pattern on a 42k-file repo), so the total is what was read, marked truncated."""
        return self.budget.full and self.current is None

    def feed(self, raw: bytes) -> None:
        if raw.startswith(_RG_BEGIN):
            if raw.startswith(_RG_BEGIN_TEXT) and raw.endswith(b"}}}"):
                quoted = raw[len(_RG_BEGIN_TEXT) : -3]
                name = json.loads(quoted) if b"\\" in quoted else quoted[1:-1].decode()
                self.current = _FileHits(path=name.removeprefix("./"))
            else:
                self.current = _FileHits(path="", bad=True)
            return
        hit = self.current
        if hit is None:
            return
        if raw.startswith(b'{"type":"end"'):
            if b'"binary_offset":null' not in raw:
                hit.bad = True
            self.files.append(hit)
            self.current = None
            return
        if not raw.startswith(b'{"type":"match"'):
            return
        hit.matched_lines += 1
        if hit.bad or b'"lines":{"bytes"' in raw:
            hit.bad = True
            return
        if self.budget.stored < MAX_SEARCH_MATCHES:
            data = json.loads(raw)["data"]
            hit.lines.append((data["line_number"], _strip_eol(data["lines"]["text"]), True))
            self.budget.stored += 1
        elif might_contain_secret(_json_line_text(raw)):
            text = _strip_eol(json.loads(raw)["data"]["lines"]["text"])
            hit.dropped += _hides_only_secret(text, self.regex)


def _redact_window(lines: list[str]) -> tuple[list[str], int]:
    """Redact search lines one by one, carrying private-key state across the window."""
    out: list[str] = []
    count = 0
    inside = False
    for line in lines:
        if "PRIVATE KEY" in line and "-----BEGIN" in line:
            inside = True
        if inside:
            inside = "-----END" not in line
            out.append("[REDACTED:private_key]")
            count += 1
            continue
        text, n = redact(line)
        out.append(text)
        count += n
    return out, count


class Sandbox:
    """The read side of the bridge for one root: git visibility, path policy and redaction."""

    def __init__(self, root: Path, repo: RepoFiles, policy: PathPolicy, rg: str | None) -> None:
        self.root = root
        self.repo = repo
        self.policy = policy
        self.rg = rg
        self.index = VisibleIndex(repo, policy)
        """What ListFiles shows, kept current by the watcher."""
        self._listing: _Listing | None = None
        self._listing_at = float("-inf")
        self._refreshing: asyncio.Future[_Listing] | None = None
        self._generation = 0

    @classmethod
    async def open(
        cls, root: Path, config: ProjectConfig, *, ripgrep: str | None = "auto"
    ) -> Sandbox:
        """Refuses (NotAGitRepository) a root outside a git work tree. `ripgrep=None` forces
        the `git grep` fallback; "auto" looks next to sys.executable, then on PATH."""
        root = Path(await asyncio.to_thread(os.path.realpath, root))
        repo = await RepoFiles.open(root)
        rg = find_ripgrep() if ripgrep == "auto" else ripgrep
        return cls(root, repo, PathPolicy(root, config.deny), rg)

    def invalidate(self) -> None:
        """Forget the cached file lists (the watcher calls this when files change)."""
        self._listing_at = float("-inf")
        self._generation += 1
        self._refreshing = None

    async def files_changed(self, paths: list[str]) -> None:
        """The watcher's batch (git-visible paths): the index re-checks only these paths, then
        the search lists are taken again (from the updated index)."""
        await self.index.apply(paths)
        self.invalidate()

    async def _current_listing(self) -> _Listing:
        """git's lists, cached until invalidated (for VISIBLE_CACHE_TTL_S at most when no
        watcher keeps them current); one refresh at a time however many commands ask at once."""
        fresh = self.index.watched or time.monotonic() - self._listing_at <= VISIBLE_CACHE_TTL_S
        if self._listing is not None and fresh:
            return self._listing
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._refresh_listing())
        refreshing = self._refreshing
        try:
            return await asyncio.shield(refreshing)
        finally:
            if self._refreshing is refreshing and refreshing.done():
                self._refreshing = None

    async def _refresh_listing(self) -> _Listing:
        started, generation = time.monotonic(), self._generation
        # A watched index's files stand for git's visible ones (one copy, no git process): what
        # it leaves out (sensitive paths, symlinks leading out) is refused anyway, and a path
        # it does not know is asked of git. Unwatched, git's plain list is cheaper to rebuild.
        visible_files = self.index.files() if self.index.watched else self.repo.visible_files()
        visible, tracked_ignored = await asyncio.gather(
            visible_files, self.repo.tracked_ignored_files()
        )
        listing = _Listing(frozenset(visible), tuple(tracked_ignored))
        if generation == self._generation:
            self._listing, self._listing_at = listing, started
        return listing

    async def _visible_set(self) -> frozenset[str]:
        return (await self._current_listing()).visible

    async def summary(self) -> RootSummary:
        """The hello's root summary: visible file count, branch and HEAD."""
        files, (branch, head) = await asyncio.gather(
            self.index.files(), self.repo.branch_and_head()
        )
        return RootSummary(root=str(self.root), visible_files=len(files), branch=branch, head=head)

    async def _require_visible(self, rel: str) -> None:
        if rel in await self._visible_set():
            return
        found = await self.repo.visible_files(rel)
        if rel in found:
            self.invalidate()
            return
        if any(f.startswith(rel + "/") for f in found):
            raise BridgeError(
                ErrorCode.INVALID_ARGS, "path is a directory; use ListFiles", path=rel
            )
        raise BridgeError(ErrorCode.FILE_NOT_FOUND, "file not found (or ignored by git)", path=rel)

    # --- ReadFile -------------------------------------------------------------------------------

    async def read_file(self, args: ReadFileArgs) -> ReadFileResult:
        rel = normalize_relative(args.path)
        if not rel:
            raise BridgeError(
                ErrorCode.INVALID_ARGS, "path is a directory; use ListFiles", path="."
            )
        self.policy.check_sensitive(rel)
        await self._require_visible(rel)
        opened = self.policy.open_file(rel)
        try:
            if opened.size <= INLINE_READ_BYTES:
                window = _read_window(opened.fd, args.offset, args.limit, rel)
            else:
                window = await asyncio.to_thread(
                    _read_window, opened.fd, args.offset, args.limit, rel
                )
        finally:
            os.close(opened.fd)
        real_path = opened.real_path
        if real_path != rel:
            await self._require_visible(real_path)
        content, redactions = redact(
            "".join(window.pieces), inside_private_key=window.key_open_at_start
        )
        returned_end = min(args.offset + window.count, window.total_lines)
        return ReadFileResult(
            content=content,
            total_lines=window.total_lines,
            truncated=returned_end < window.total_lines,
            encoding="utf-8",
            redactions=redactions,
        )

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
        if "\0" in args.pattern:
            raise BridgeError(ErrorCode.INVALID_ARGS, "pattern contains a NUL byte")
        matcher = compile_glob(args.pattern.lstrip("/") or "**/*")
        prefix = rel_dir + "/" if rel_dir else ""
        files = [f for f in await self.index.under(prefix) if matcher.match(f[len(prefix) :])]
        return ListFilesResult(
            files=files[:MAX_LIST_FILES], total=len(files), truncated=len(files) > MAX_LIST_FILES
        )

    # --- SearchFiles ----------------------------------------------------------------------------

    async def search_files(self, args: SearchFilesArgs) -> SearchFilesResult:
        if not args.pattern or len(args.pattern) > 500 or "\0" in args.pattern:
            raise BridgeError(ErrorCode.INVALID_ARGS, "pattern must be a regex of 1-500 characters")
        if "\n" in args.pattern:
            raise BridgeError(ErrorCode.INVALID_ARGS, "pattern must be one line", field="pattern")
        if args.glob is not None and "\0" in args.glob:
            raise BridgeError(ErrorCode.INVALID_ARGS, "glob contains a NUL byte")
        rel_dir = self._directory(args.path, allow_file=True)
        try:
            regex: re.Pattern[str] | None = re.compile(args.pattern)
        except re.error:
            regex = None
        search = self._search_rg if self.rg else self._search_git_grep
        budget = _Budget(deadline=asyncio.get_running_loop().time() + SEARCH_TIMEOUT_S)
        files, visible = await search(args.pattern, args.glob, rel_dir, regex, budget)
        return self._collect(files, visible, regex, cut=budget.cut)

    def _glob_filter(self, glob: str | None) -> Callable[[str], bool]:
        """ripgrep's meaning of a glob: without '/', it matches the file name at any depth."""
        if not glob:
            return lambda _path: True
        negate = glob.startswith("!")
        body = glob[1:] if negate else glob
        matcher = compile_glob(body.lstrip("/") if "/" in body else "**/" + body)
        return lambda path: bool(matcher.match(path)) != negate

    async def _search_rg(
        self,
        pattern: str,
        glob: str | None,
        rel_dir: str,
        regex: re.Pattern[str] | None,
        budget: _Budget,
    ) -> tuple[list[_FileHits], frozenset[str]]:
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
        streams = [_RgStream(budget, regex)]
        walk = asyncio.ensure_future(self._run_rg([*base, rel_dir or "."], streams[0]))
        try:
            listing = await self._current_listing()
            extra = await self._tracked_ignored(listing, rel_dir, self._glob_filter(glob))
            if extra and not budget.full:
                streams.append(_RgStream(budget, regex))
                await self._run_rg([*base, *extra], streams[1])
            await walk
        finally:
            walk.cancel()
            await asyncio.gather(walk, return_exceptions=True)
        hits = [hit for stream in streams for hit in stream.files]
        visible = await self._confirm_visible(listing, {hit.path for hit in hits})
        await asyncio.to_thread(self._add_context, [h for h in hits if h.path in visible])
        return hits, visible

    async def _confirm_visible(self, listing: _Listing, paths: set[str]) -> frozenset[str]:
        """The cached list decides for known paths; git is asked about the others (files
        created since the list was taken), so a new file is found and an ignored one is not."""
        unknown = sorted(paths - listing.visible)
        if not unknown:
            return listing.visible
        if len(unknown) > MAX_LIST_FILES:
            self.invalidate()
            return (await self._current_listing()).visible
        return listing.visible | frozenset(await self.repo.visible_files(*unknown))

    async def _run_rg(self, cmd: list[str], stream: _RgStream) -> None:
        """Feed rg's output to `stream` until it ends, the first page is done or time is up."""
        budget = stream.budget
        async with child_process(*cmd, cwd=self.root) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            pending = bytearray()
            try:
                async with asyncio.timeout_at(budget.deadline):
                    while chunk := await proc.stdout.read(_RG_READ_BYTES):
                        pending += chunk
                        end = pending.rfind(b"\n")
                        if end == -1:
                            continue
                        block = bytes(pending[:end])
                        del pending[: end + 1]
                        for raw in block.split(b"\n"):
                            stream.feed(raw)
                            if stream.done:
                                break
                        if stream.done or budget.expired():
                            budget.cut = True
                            return
            except TimeoutError:
                budget.cut = True
                return
            if pending:
                stream.feed(bytes(pending))
            err = await proc.stderr.read()
            code = await proc.wait()
        if code == 2 and b"regex" in err:
            message = err.decode(errors="replace").strip().splitlines()[-1]
            raise BridgeError(ErrorCode.INVALID_ARGS, f"invalid regex: {message}", field="pattern")

    async def _tracked_ignored(
        self, listing: _Listing, rel_dir: str, wanted: Callable[[str], bool]
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
        self,
        pattern: str,
        glob: str | None,
        rel_dir: str,
        regex: re.Pattern[str] | None,
        budget: _Budget,
    ) -> tuple[list[_FileHits], frozenset[str]]:
        """Without ripgrep: `git grep --untracked` searches git's visible files, except tracked
        files that match an ignore rule, which a second, tracked-only `git grep` names."""
        wanted = self._glob_filter(glob)
        files: dict[str, _FileHits] = {}
        await self._run_git_grep(
            ["--untracked", "--", rel_dir or "."], pattern, wanted, budget, files, regex
        )
        extra = await self._tracked_ignored(await self._current_listing(), rel_dir, wanted)
        if extra and not budget.cut:
            specs = [f":(literal){f}" for f in extra]
            await self._run_git_grep(["--", *specs], pattern, wanted, budget, files, regex)
        hits = list(files.values())
        await asyncio.to_thread(self._add_context, hits)
        return hits, frozenset(files)

    async def _run_git_grep(
        self,
        where: list[str],
        pattern: str,
        wanted: Callable[[str], bool],
        budget: _Budget,
        files: dict[str, _FileHits],
        regex: re.Pattern[str] | None,
    ) -> None:
        async with git_process(
            self.root,
            "grep",
            "-z",
            "-n",
            "-I",
            "--no-color",
            "-P",
            "-e",
            pattern,
            *where,
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            try:
                async with asyncio.timeout_at(budget.deadline):
                    async for raw in proc.stdout:
                        if budget.expired() or not self._feed_git_grep(
                            raw, wanted, budget, files, regex
                        ):
                            budget.cut = True
                            return
            except TimeoutError:
                budget.cut = True
                return
            err = await proc.stderr.read()
            code = await proc.wait()
        if code == 128:
            message = err.decode(errors="replace").strip().splitlines()[-1]
            raise BridgeError(ErrorCode.INVALID_ARGS, f"invalid regex: {message}", field="pattern")

    @staticmethod
    def _feed_git_grep(
        raw: bytes,
        wanted: Callable[[str], bool],
        budget: _Budget,
        files: dict[str, _FileHits],
        regex: re.Pattern[str] | None,
    ) -> bool:
        """Count one `git grep` line; False once the first page is full and a new file starts
        (git grep prints a file's lines together, so the files seen so far are complete)."""
        parts = raw.split(b"\0", 2)
        if len(parts) != 3:
            return True
        name_b, number_b, text_b = parts
        try:
            name, text = name_b.decode(), _strip_eol(text_b.decode())
        except UnicodeDecodeError:
            return True
        if not wanted(name):
            return True
        if budget.full and name not in files:
            return False
        hit = files.setdefault(name, _FileHits(path=name))
        hit.matched_lines += 1
        if not budget.full:
            hit.lines.append((int(number_b), text, True))
            budget.stored += 1
        else:
            hit.dropped += _hides_only_secret(text, regex)
        return True

    def _add_context(self, hits: list[_FileHits]) -> None:
        """Read the context lines of kept matches from the files themselves (race-free open);
        a file whose context is not UTF-8 is dropped, as ReadFile would refuse it."""
        for hit in hits:
            wanted = {
                n + d
                for n, _, _ in hit.lines
                for d in range(-SEARCH_CONTEXT_LINES, SEARCH_CONTEXT_LINES + 1)
                if d and n + d > 0
            } - {n for n, _, _ in hit.lines}
            if not wanted:
                continue
            try:
                opened = self.policy.open_file(hit.path)
            except BridgeError:
                hit.bad = True
                continue
            last = max(wanted)
            with os.fdopen(opened.fd, "rb") as handle:
                for number, raw in enumerate(handle, start=1):
                    if number > last:
                        break
                    if number not in wanted:
                        continue
                    try:
                        hit.lines.append((number, _strip_eol(raw.decode()), False))
                    except UnicodeDecodeError:
                        hit.bad = True
                        break
            hit.lines.sort()

    def _collect(
        self,
        files: list[_FileHits],
        visible: frozenset[str],
        regex: re.Pattern[str] | None,
        *,
        cut: bool,
    ) -> SearchFilesResult:
        """Keep visible text files; count honestly; return at most MAX_SEARCH_MATCHES. When the
        search stopped early (`cut`), the total counts the files read: at least that many."""
        matches: list[SearchMatch] = []
        total = 0
        redactions = 0
        for hit in files:
            if hit.bad or hit.path not in visible or self.policy.is_sensitive(hit.path):
                continue
            total += hit.matched_lines - hit.dropped
            text_at = {n: text for n, text, _ in hit.lines}
            for number, text, is_match in hit.lines:
                if not is_match:
                    continue
                if _hides_only_secret(text, regex):
                    total -= 1
                    continue
                if len(matches) >= MAX_SEARCH_MATCHES:
                    continue
                before = [
                    text_at[n] for n in range(number - SEARCH_CONTEXT_LINES, number) if n in text_at
                ]
                after = [
                    text_at[n]
                    for n in range(number + 1, number + SEARCH_CONTEXT_LINES + 1)
                    if n in text_at
                ]
                window, count = _redact_window([*before, text, *after])
                redactions += count
                matches.append(
                    SearchMatch(
                        file=hit.path,
                        line=number,
                        content=window[len(before)],
                        context_before=window[: len(before)],
                        context_after=window[len(before) + 1 :],
                    )
                )
        matches.sort(key=lambda m: (m.file, m.line))
        return SearchFilesResult(
            matches=matches,
            total_matches=total,
            truncated=cut or total > len(matches),
            redactions=redactions,
        )


def read_handlers(sandbox: Sandbox) -> dict[str, Handler]:
    """Command name -> async handler(args model) -> result model, for the link to dispatch."""
    return {
        "ReadFile": sandbox.read_file,
        "ListFiles": sandbox.list_files,
        "SearchFiles": sandbox.search_files,
    }
