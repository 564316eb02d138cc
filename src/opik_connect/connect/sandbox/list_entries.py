"""ListFiles' answer as Opik's bridge gives it (entries down to a depth, directories as 'dir/'),
computed from the sorted list of visible files: a directory is an entry when it holds a visible
file, and a subtree that cannot add an entry is skipped by bisection, not walked."""

from __future__ import annotations

import bisect
import string
from collections.abc import Callable, Sequence

from opik_connect.connect.sandbox.linear_regex import compile_linear, whole_match
from opik_connect.protocol import BridgeError, ErrorCode, ListFilesResult

MAX_LIST_ENTRIES = 1000
MAX_LIST_BYTES = 512 * 1024
"""Opik's caps on one answer: entries, and their UTF-8 bytes plus one per entry."""
MAX_PATTERN_CHARS = 1000
WALK_SKIP_DIRS = frozenset(
    {
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "dist",
        "build",
    }
)
"""Directories Opik's ListFiles never shows nor enters (noise, even when git shows them)."""


def fnmatch_regex(pattern: str) -> str:
    """Python's fnmatch syntax as an RE2 regex: `*` matches any run (a '/' too), `?` one
    character, `[seq]` and `[!seq]` a set; an unclosed `[` is literal."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            while i < n and pattern[i] == "*":
                i += 1
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i + 1 if pattern[i : i + 1] == "!" else i
            j = j + 1 if pattern[j : j + 1] == "]" else j
            end = pattern.find("]", j)
            if end == -1:
                out.append(r"\[")
                continue
            body = pattern[i:end].replace("\\", "\\\\")
            i = end + 1
            if body == "!":
                out.append(".")
            elif body.startswith("!"):
                out.append("[^" + body[1:] + "]")
            elif body.startswith(("^", "[")):
                out.append("[\\" + body + "]")
            else:
                out.append("[" + body + "]")
        else:
            out.append("\\" + c if c in string.punctuation else c)
    return "".join(out)


EntryMatch = Callable[[str, str], bool]
"""(name, path relative to the listed directory) -> shown."""


def compile_fnmatch(pattern: str) -> EntryMatch:
    """Opik's file filter: the pattern matches the name or the relative path (fnmatch, in
    linear time with RE2). `*` and a plain tail (`*.py`) is a suffix test on the name (a path
    matches only when its name does); a pattern without wildcards is an equality test."""
    if len(pattern) > MAX_PATTERN_CHARS or "\0" in pattern:
        raise BridgeError(
            ErrorCode.INVALID_ARGS,
            f"pattern must be at most {MAX_PATTERN_CHARS} characters, without NUL",
            field="pattern",
        )
    tail = pattern[1:]
    if pattern.startswith("*") and not any(c in tail for c in "*?[/"):
        return lambda name, _rel: name.endswith(tail)
    if not any(c in pattern for c in "*?["):
        return lambda name, rel: pattern in (name, rel)
    match = whole_match(
        compile_linear("(?s)" + fnmatch_regex(pattern), what="pattern", as_bytes=True)
    )
    return lambda name, rel: match(name.encode()) or (name != rel and match(rel.encode()))


def _subtree_end(files: Sequence[str], directory: str, lo: int, hi: int) -> int:
    """The index after the last file under `directory` ('a/b', no slash): '0' follows '/'."""
    return bisect.bisect_left(files, directory + "0", lo, hi)


def _directory(path: str, depth: int, dirs: set[str]) -> tuple[bool, str]:
    """For the files directly in `path` ('a/b/' or ''): add the directory entries they make,
    and say whether they are shown, and which subtree ('a/b', or '' for none) holds nothing
    more to show (deeper than `depth`, or a noise directory)."""
    parts = path.split("/")[:-1]
    levels = len(parts)
    stop = levels
    if not WALK_SKIP_DIRS.isdisjoint(parts):
        stop = next(k for k in range(levels) if parts[k] in WALK_SKIP_DIRS)
    top = min(stop, depth)
    if top and "/".join(parts[:top]) + "/" not in dirs:
        dirs.update("/".join(parts[:k]) + "/" for k in range(1, top + 1))
    below = min(stop + 1, depth) if stop < levels else depth
    return stop == levels < depth, "/".join(parts[:below]) if levels >= below else ""


def list_entries(
    files: Sequence[str], rel_dir: str, depth: int, pattern: EntryMatch | None
) -> ListFilesResult:
    """The entries under `rel_dir` ('' for the root) down to `depth` levels, relative to it.

    `files` is sorted; the pattern filters files by name or relative path, never directories.
    Sorted as Opik sorts (directories first, then case-insensitively), then capped."""
    prefix = rel_dir + "/" if rel_dir else ""
    lo = bisect.bisect_left(files, prefix)
    hi = _subtree_end(files, rel_dir, lo, len(files)) if rel_dir else len(files)
    if rel_dir and lo == hi:
        raise BridgeError(ErrorCode.FILE_NOT_FOUND, "no such directory", path=rel_dir)
    start = len(prefix)
    dirs: set[str] = set()
    names: list[str] = []
    last_dir: str | None = None
    shown = False
    below = ""
    i = lo
    while i < hi:
        rel = files[i][start:]
        cut = rel.rfind("/") + 1
        if rel[:cut] != last_dir:  # a new directory: decide for all its files at once
            last_dir = rel[:cut]
            shown, below = _directory(last_dir, depth, dirs)
        if below:
            i = _subtree_end(files, prefix + below, i + 1, hi)
            continue
        name = rel[cut:]
        if shown and (pattern is None or pattern(name, rel)):
            names.append(rel)
        i += 1
    # Opik's order: directories first, then case-insensitively (ties by code point: stable sorts).
    return _capped(sorted(sorted(dirs), key=str.lower) + sorted(names, key=str.lower))


def _capped(entries: list[str]) -> ListFilesResult:
    kept: list[str] = []
    size = 0
    for name in entries:
        size += len(name.encode("utf-8")) + 1
        if len(kept) >= MAX_LIST_ENTRIES or size > MAX_LIST_BYTES:
            break
        kept.append(name)
    return ListFilesResult(files=kept, total=len(entries), truncated=len(kept) < len(entries))
