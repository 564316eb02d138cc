"""The edit engine: a proposed change (edits or a unified diff) -> one canonical unified diff.

Its contract: an applied change alters only the text it matched, and writes what the model meant
(drift it copied into both old and new text cancels out); anything it cannot place exactly once
is refused with an error that says what to fix, never guessed. The parts: `file_text` (reading),
`string_edits` and `unified_diffs` (applying), `text_drift` (the drift forgiven and undone),
`match_errors` (the refusals), `canonical_diff` (the diff the user approves).

Deletions: a `FileEdit` with `delete=True` (old_string "" or the whole file, new_string ""), or a
diff whose target is `/dev/null`. New files: `old_string` "" on a path that does not exist, or a
diff whose source is `/dev/null`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opik_connect.connect.proposals.canonical_diff import CanonicalChange, finish
from opik_connect.connect.proposals.file_text import (
    FileText,
    ReadCurrent,
    content_hash,
    decode_file,
    read_current,
)
from opik_connect.connect.proposals.string_edits import apply_edits
from opik_connect.connect.proposals.unified_diffs import apply_hunks, parse_diff
from opik_connect.protocol import BridgeError, ErrorCode, FileEdit

__all__ = [
    "CanonicalChange",
    "FileText",
    "ReadCurrent",
    "content_hash",
    "decode_file",
    "plan_diff",
    "plan_edits",
    "read_current",
    "reapply",
]


def plan_edits(edits: Iterable[FileEdit], read: Callable[[str], FileText]) -> CanonicalChange:
    """Edits -> canonical change. Edits of one file apply in order, each to the previous result."""
    grouped: dict[str, list[tuple[int, FileEdit]]] = {}
    for index, edit in enumerate(edits):
        grouped.setdefault(edit.path, []).append((index, edit))
    if not grouped:
        raise BridgeError(ErrorCode.NO_CHANGE, "no edits given")
    before = {path: read(path) for path in grouped}
    after = {path: apply_edits(path, before[path], items) for path, items in grouped.items()}
    return finish(before, after)


def plan_diff(diff: str, read: Callable[[str], FileText]) -> CanonicalChange:
    """A unified diff -> canonical change, each hunk placed by its text in the current content."""
    patches = parse_diff(diff)
    if not patches:
        raise BridgeError(
            ErrorCode.PATCH_FAILED,
            "the diff names no file (expected '--- a/path' and '+++ b/path' lines, then hunks)",
        )
    before: dict[str, FileText] = {}
    after: dict[str, str | None] = {}
    for patched in patches:
        source, target = patched.source, patched.target
        if source is not None and target is not None and source != target:
            raise BridgeError(
                ErrorCode.PATCH_FAILED,
                f"renames are not supported ({source} -> {target}); delete and add instead",
                path=source,
            )
        path = patched.path
        if not path or path in before:
            raise BridgeError(ErrorCode.PATCH_FAILED, f"the diff names {path} twice or not at all")
        current = read(path)
        before[path] = current
        if source is None:
            if current.exists:
                raise BridgeError(
                    ErrorCode.PATCH_FAILED, f"{path} already exists; the diff creates it", path=path
                )
            after[path] = apply_hunks(path, "", patched.hunks)
            continue
        if current.text is None:
            raise BridgeError(ErrorCode.FILE_NOT_FOUND, f"{path} does not exist", path=path)
        new_text = apply_hunks(path, current.text, patched.hunks)
        if target is None and new_text:
            raise BridgeError(
                ErrorCode.PATCH_FAILED,
                f"the diff deletes {path} but its hunks leave {new_text.count(chr(10)) + 1} "
                "lines of it; a deletion removes every line",
                path=path,
            )
        after[path] = None if target is None else new_text
    return finish(before, after)


def reapply(diff: str, read: Callable[[str], FileText]) -> CanonicalChange:
    """Re-checks a canonical diff against the files as they are now (staleness, apply)."""
    return plan_diff(diff, read)
