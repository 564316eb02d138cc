"""The canonical change: the git-style diff the user approves, checked to reproduce the plan.

The canonical diff is computed against the files as they are on disk now, so what the user
approves is exactly what will be committed; it always uses "\\n".
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

from opik_connect.connect.proposals.file_text import FileText, content_hash
from opik_connect.connect.proposals.unified_diffs import apply_hunks, parse_diff
from opik_connect.protocol import BridgeError, ErrorCode, FileStat


@dataclass(frozen=True)
class CanonicalChange:
    """The result of planning: the diff to show and commit, and what it does to each file."""

    diff: str
    files: list[FileStat]
    before: dict[str, FileText]
    after: dict[str, str | None] = field(default_factory=dict)
    """New "\\n" text per path; None means the file is deleted."""

    def base_hashes(self) -> dict[str, str | None]:
        return {path: content_hash(ft) for path, ft in self.before.items()}

    def new_bytes(self, path: str) -> bytes | None:
        text = self.after[path]
        return None if text is None else self.before[path].encode(text)


def _range(start: int, length: int) -> str:
    beginning = start + 1 if length else start
    return str(beginning) if length == 1 else f"{beginning},{length}"


def _emit(lines: list[str], prefix: str, line: str) -> None:
    if line.endswith("\n"):
        lines.append(prefix + line)
    else:
        lines.append(prefix + line + "\n")
        lines.append("\\ No newline at end of file\n")


def render_file_diff(path: str, old: str | None, new: str | None) -> tuple[str, FileStat]:
    """One file's git-style unified diff with 3 lines of context, and its +/- counts."""
    a = (old or "").splitlines(keepends=True)
    b = (new or "").splitlines(keepends=True)
    change = "added" if old is None else "deleted" if new is None else "modified"
    out = [f"diff --git a/{path} b/{path}\n"]
    if change == "added":
        out.append("new file mode 100644\n")
    elif change == "deleted":
        out.append("deleted file mode 100644\n")
    out.append("--- /dev/null\n" if old is None else f"--- a/{path}\n")
    out.append("+++ /dev/null\n" if new is None else f"+++ b/{path}\n")
    added = removed = 0
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for group in matcher.get_grouped_opcodes(3):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        out.append(f"@@ -{_range(i1, i2 - i1)} +{_range(j1, j2 - j1)} @@\n")
        for tag, s1, s2, t1, t2 in group:
            if tag == "equal":
                for line in a[s1:s2]:
                    _emit(out, " ", line)
                continue
            for line in a[s1:s2]:
                _emit(out, "-", line)
                removed += 1
            for line in b[t1:t2]:
                _emit(out, "+", line)
                added += 1
    return "".join(out), FileStat(path=path, added=added, removed=removed, change=change)


def _check_syntax(path: str, old: str | None, new: str | None) -> None:
    """A Python file the change breaks is refused; one already broken before stays allowed."""
    if new is None or not path.endswith((".py", ".pyi")):
        return
    try:
        compile(new, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        if old is not None:
            try:
                compile(old, path, "exec", dont_inherit=True)
            except SyntaxError:
                return
        raise BridgeError(
            ErrorCode.SYNTAX_ERROR,
            f"{path}:{exc.lineno}: {exc.msg} (after the change)",
            path=path,
            line=exc.lineno,
            offset=exc.offset,
        ) from exc


def finish(before: Mapping[str, FileText], after: Mapping[str, str | None]) -> CanonicalChange:
    parts = []
    stats = []
    changed_after: dict[str, str | None] = {}
    for path in sorted(after):
        old, new = before[path].text, after[path]
        if old == new:
            continue
        _check_syntax(path, old, new)
        text, stat = render_file_diff(path, old, new)
        parts.append(text)
        stats.append(stat)
        changed_after[path] = new
    if not parts:
        raise BridgeError(ErrorCode.NO_CHANGE, "the change leaves every file as it is")
    diff = "".join(parts)
    _verify(diff, {p: before[p].text for p in changed_after}, changed_after)
    return CanonicalChange(
        diff=diff,
        files=stats,
        before={p: before[p] for p in changed_after},
        after=changed_after,
    )


def _verify(diff: str, old: Mapping[str, str | None], new: Mapping[str, str | None]) -> None:
    """The canonical diff must reproduce the planned content exactly, each hunk where it says."""
    for patched in parse_diff(diff):
        path = patched.path
        result = apply_hunks(path, old[path] or "", patched.hunks, strict=True)
        expected = new[path]
        if (expected is None and result != "") or (expected is not None and result != expected):
            raise BridgeError(ErrorCode.INTERNAL, f"canonical diff does not reproduce {path}")
