"""Turns a proposed change (edits or a unified diff) into one canonical unified diff.

The canonical diff is computed against the files as they are on disk now, so what the user
approves is exactly what will be committed. Everything here is pure except `read_current`,
which reads only through the sandbox's race-free opener and only what git shows (as ReadFile
does), so no path can escape the root, touch a secret, an ignored file or a FIFO.

Line endings: files are handled with "\\n" internally; a file that used CRLF is written back with
CRLF, and a UTF-8 BOM is kept. The canonical diff therefore always uses "\\n".
Deletions: a `FileEdit` with `delete=True` (old_string "" or the whole file, new_string ""), or a
diff whose target is `/dev/null`. New files: `old_string` "" on a path that does not exist, or a
diff whose source is `/dev/null`.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from unidiff import PatchSet
from unidiff.errors import UnidiffParseError

from opik_connect.connect.sandbox.policy import PathPolicy, normalize_relative
from opik_connect.protocol import BridgeError, ErrorCode, FileEdit, FileStat

ReadCurrent = Callable[[str], "FileText"]
"""A root-relative path -> the file as it is now (text None when missing), or BridgeError."""
Visible = Callable[[str, bool], bool]
"""(root-relative path, exists) -> whether git shows it: tracked or untracked-not-ignored when it
exists, not ignored when it does not (a new file there would be committed visibly)."""

MAX_PROPOSAL_FILE_BYTES = 1 << 20
"""Proposals edit source files; a larger file is refused (limit_reached) rather than read whole."""
NOT_VISIBLE = "file not found (or ignored by git)"
"""ReadFile's message for a path git does not show; the same words here reveal nothing more."""

MAX_HUNK_OFFSET = 10
"""How many lines a diff hunk may have drifted from its stated position and still apply."""

BOM = "\ufeff"
_UNICODE_FOLD = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
        "\u00a0": " ",
        "\u202f": " ",
        "\u2007": " ",
    }
)
"""One character for one character, so offsets in the folded text equal offsets in the original."""


@dataclass(frozen=True)
class FileText:
    """A file's content as the engine sees it: "\\n" lines, BOM and CRLF remembered separately."""

    path: str
    text: str | None
    """None when the file does not exist."""
    crlf: bool = False
    bom: bool = False

    @property
    def exists(self) -> bool:
        return self.text is not None

    def encode(self, text: str) -> bytes:
        body = text.replace("\n", "\r\n") if self.crlf else text
        return ((BOM if self.bom else "") + body).encode("utf-8")


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


def decode_file(path: str, data: bytes | None) -> FileText:
    """Bytes on disk -> FileText; non-UTF-8 content is refused as binary_file."""
    if data is None:
        return FileText(path, None)
    if b"\0" in data[:8192]:
        raise BridgeError(ErrorCode.BINARY_FILE, f"{path} is a binary file", path=path)
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BridgeError(ErrorCode.BINARY_FILE, f"{path} is not UTF-8", path=path) from exc
    bom = raw.startswith(BOM)
    if bom:
        raw = raw[1:]
    crlf = raw.count("\r\n") > 0 and raw.count("\r\n") >= raw.count("\n") - raw.count("\r\n")
    return FileText(path, raw.replace("\r\n", "\n"), crlf=crlf, bom=bom)


def content_hash(ft: FileText) -> str | None:
    """The hash staleness compares: of the bytes as they would be written, None when missing."""
    if ft.text is None:
        return None
    return hashlib.sha256(ft.encode(ft.text)).hexdigest()


def _read_fd(fd: int, path: str) -> bytes:
    """At most the cap from an opened file; a file that grew past it is refused, not cut."""
    chunks, size = [], 0
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_PROPOSAL_FILE_BYTES:
            raise _too_big(path)
    return b"".join(chunks)


def _too_big(path: str) -> BridgeError:
    return BridgeError(
        ErrorCode.LIMIT_REACHED,
        f"{path} is larger than {MAX_PROPOSAL_FILE_BYTES} bytes; proposals edit source files",
        path=path,
        limit=MAX_PROPOSAL_FILE_BYTES,
    )


def read_current(policy: PathPolicy, visible: Visible, path: str) -> FileText:
    """Reads one file as ReadFile would; a missing (not ignored) file is FileText(text=None).

    Visibility is asked before the file is touched, so an ignored path answers file_not_found
    whether or not it exists, a FIFO, socket or device, and past a symlink swap, by
    permission_denied or path_traversal from the opener, never by a read that hangs.
    """
    rel = normalize_relative(path)
    if not rel:
        raise BridgeError(ErrorCode.INVALID_ARGS, "a proposal must name a file", path=path)
    policy.check_sensitive(rel)
    listed = visible(rel, True)
    if not listed and not visible(rel, False):
        real = os.path.realpath(policy.root / rel)
        if not real.startswith(f"{policy.root}/"):
            raise BridgeError(
                ErrorCode.PATH_TRAVERSAL, "path leaves the root through a symlink", path=path
            )
        raise BridgeError(ErrorCode.FILE_NOT_FOUND, NOT_VISIBLE, path=path)
    try:
        opened = policy.open_file(rel)
    except BridgeError as exc:
        if exc.code == ErrorCode.FILE_NOT_FOUND:
            return FileText(path, None)
        raise
    try:
        if not listed or (opened.real_path != rel and not visible(opened.real_path, True)):
            raise BridgeError(ErrorCode.FILE_NOT_FOUND, NOT_VISIBLE, path=path)
        if opened.size > MAX_PROPOSAL_FILE_BYTES:
            raise _too_big(path)
        data = _read_fd(opened.fd, path)
    finally:
        os.close(opened.fd)
    return decode_file(path, data)


# --- Edits --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    replacement: str
    edit_index: int


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _line_starts(text: str) -> list[int]:
    starts = [0]
    starts.extend(m.end() for m in re.finditer("\n", text))
    return starts


def _split_block(block: str) -> tuple[list[str], bool]:
    """A block of text -> its lines and whether it ended with a newline."""
    trailing = block.endswith("\n")
    body = block[:-1] if trailing else block
    return body.split("\n"), trailing


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _shift_for(file_lines: list[str], old_lines: list[str]) -> tuple[str, str] | None:
    """The uniform indentation change (remove, add) mapping old_lines onto file_lines, if any."""
    shift: tuple[str, str] | None = None
    for have, want in zip(file_lines, old_lines, strict=True):
        if not want.strip():
            if have.strip():
                return None
            continue
        if have.strip() != want.strip():
            return None
        hi, wi = _indent(have), _indent(want)
        if hi.endswith(wi):
            candidate = ("", hi[: len(hi) - len(wi)])
        elif wi.endswith(hi):
            candidate = (wi[: len(wi) - len(hi)], "")
        else:
            return None
        if shift is None:
            shift = candidate
        elif shift != candidate:
            return None
    return shift


def _apply_shift(text: str, shift: tuple[str, str]) -> str:
    remove, add = shift
    out = []
    for line in text.split("\n"):
        if line.strip():
            if remove and line.startswith(remove):
                line = line[len(remove) :]
            line = add + line
        out.append(line)
    return "\n".join(out)


def _fuzzy_windows(text: str, old: str) -> list[tuple[int, int, tuple[str, str]]]:
    """Line windows matching `old` after folding Unicode, trailing space and indentation.

    Returns (first line index, line count, indentation shift) for each match.
    """
    file_lines = text.split("\n")
    old_lines, _ = _split_block(old)
    folded_file = [line.translate(_UNICODE_FOLD).rstrip() for line in file_lines]
    folded_old = [line.translate(_UNICODE_FOLD).rstrip() for line in old_lines]
    n = len(folded_old)
    hits = []
    for i in range(len(folded_file) - n + 1):
        window = folded_file[i : i + n]
        if window == folded_old:
            hits.append((i, n, ("", "")))
            continue
        shift = _shift_for(window, folded_old)
        if shift is not None:
            hits.append((i, n, shift))
    return hits


def _closest_region(text: str, old: str) -> tuple[int, str]:
    """The window of the file most like `old`, to quote in match_not_found."""
    file_lines = text.split("\n")
    old_lines, _ = _split_block(old)
    n = max(1, len(old_lines))
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(old)
    best = (0.0, 0)
    for i in range(max(1, len(file_lines) - n + 1)):
        matcher.set_seq1("\n".join(file_lines[i : i + n]))
        if matcher.real_quick_ratio() <= best[0] or matcher.quick_ratio() <= best[0]:
            continue
        ratio = matcher.ratio()
        if ratio > best[0]:
            best = (ratio, i)
    start = best[1]
    quoted = "\n".join(
        f"{start + k + 1:>5}| {line}" for k, line in enumerate(file_lines[start : start + n])
    )
    return start + 1, quoted


def _occurrences(text: str, needle: str) -> list[int]:
    """Start offsets of every occurrence, overlapping ones included."""
    found = []
    at = text.find(needle)
    while at != -1:
        found.append(at)
        at = text.find(needle, at + 1)
    return found


def _locate(path: str, text: str, edit: FileEdit, index: int) -> _Span:
    """Where one edit applies in `text`: exact and unique, else the fuzzy fallback."""
    old = edit.old_string.replace("\r\n", "\n")
    new = edit.new_string.replace("\r\n", "\n")
    exact = _occurrences(text, old)
    if not exact:
        exact = _occurrences(text.translate(_UNICODE_FOLD), old.translate(_UNICODE_FOLD))
    if len(exact) == 1:
        return _Span(exact[0], exact[0] + len(old), new, index)
    if len(exact) > 1:
        lines = [_line_of(text, pos) for pos in exact]
        raise BridgeError(
            ErrorCode.MATCH_AMBIGUOUS,
            f"edit {index}: old_string occurs {len(exact)} times in {path} (lines "
            f"{', '.join(map(str, lines))}); include more context to make it unique",
            path=path,
            edit=index,
            lines=lines,
        )
    hits = _fuzzy_windows(text, old)
    if len(hits) > 1:
        lines = [first + 1 for first, _, _ in hits]
        raise BridgeError(
            ErrorCode.MATCH_AMBIGUOUS,
            f"edit {index}: old_string matches {len(hits)} places in {path} after normalising "
            f"whitespace and punctuation (lines {', '.join(map(str, lines))})",
            path=path,
            edit=index,
            lines=lines,
        )
    if not hits:
        line, quoted = _closest_region(text, old)
        raise BridgeError(
            ErrorCode.MATCH_NOT_FOUND,
            f"edit {index}: old_string not found in {path}; the closest region "
            f"(line {line}) is:\n{quoted}",
            path=path,
            edit=index,
            closest_line=line,
            closest=quoted,
        )
    first, count, shift = hits[0]
    starts = _line_starts(text)
    start = starts[first]
    last = first + count - 1
    end = starts[last] + len(text.split("\n")[last])
    _, trailing_old = _split_block(old)
    if trailing_old and end < len(text):
        end += 1
    return _Span(start, end, _apply_shift(new, shift), index)


def _apply_file_edits(
    path: str, current: FileText, edits: list[tuple[int, FileEdit]]
) -> str | None:
    """New text for one file after its edits; None when the file is deleted."""
    first_index, first = edits[0]
    if first.delete:
        if len(edits) > 1:
            raise BridgeError(
                ErrorCode.EDITS_OVERLAP,
                f"edits {first_index} and {edits[1][0]} both touch {path}, which is deleted",
                path=path,
                edits=[first_index, edits[1][0]],
            )
        if current.text is None:
            raise BridgeError(ErrorCode.FILE_NOT_FOUND, f"{path} does not exist", path=path)
        if first.new_string or first.old_string not in ("", current.text):
            raise BridgeError(
                ErrorCode.INVALID_ARGS,
                f"edit {first_index}: delete needs new_string '' and old_string '' or the "
                "whole file",
                path=path,
                edit=first_index,
            )
        return None
    if current.text is None:
        if first.old_string != "":
            raise BridgeError(ErrorCode.FILE_NOT_FOUND, f"{path} does not exist", path=path)
        if len(edits) > 1:
            raise BridgeError(
                ErrorCode.EDITS_OVERLAP,
                f"edits {first_index} and {edits[1][0]} both write the new file {path}",
                path=path,
                edits=[first_index, edits[1][0]],
            )
        return first.new_string.replace("\r\n", "\n")
    text = current.text
    spans = []
    for index, edit in edits:
        if edit.delete:
            raise BridgeError(
                ErrorCode.EDITS_OVERLAP,
                f"edit {index} deletes {path}, which other edits change",
                path=path,
                edits=[index],
            )
        if edit.old_string == "":
            if text:
                raise BridgeError(
                    ErrorCode.INVALID_ARGS,
                    f"edit {index}: old_string is empty but {path} exists and is not empty",
                    path=path,
                    edit=index,
                )
            spans.append(_Span(0, 0, edit.new_string.replace("\r\n", "\n"), index))
            continue
        if edit.old_string == edit.new_string:
            raise BridgeError(
                ErrorCode.NO_CHANGE,
                f"edit {index}: old_string and new_string are the same",
                path=path,
                edit=index,
            )
        spans.append(_locate(path, text, edit, index))
    spans.sort(key=lambda s: (s.start, s.end))
    for a, b in itertools.pairwise(spans):
        if b.start < a.end or (a.start == a.end == b.start):
            raise BridgeError(
                ErrorCode.EDITS_OVERLAP,
                f"edits {a.edit_index} and {b.edit_index} overlap in {path} (line "
                f"{_line_of(text, b.start)})",
                path=path,
                edits=[a.edit_index, b.edit_index],
            )
    for span in reversed(spans):
        text = text[: span.start] + span.replacement + text[span.end :]
    return text


def plan_edits(edits: Iterable[FileEdit], read: Callable[[str], FileText]) -> CanonicalChange:
    """Edits -> canonical change. Edits of one file are matched against its current content."""
    grouped: dict[str, list[tuple[int, FileEdit]]] = {}
    for index, edit in enumerate(edits):
        grouped.setdefault(edit.path, []).append((index, edit))
    if not grouped:
        raise BridgeError(ErrorCode.NO_CHANGE, "no edits given")
    before = {path: read(path) for path in grouped}
    after = {path: _apply_file_edits(path, before[path], items) for path, items in grouped.items()}
    return _finish(before, after)


# --- Unified diffs ------------------------------------------------------------------------------


def _strip_prefix(name: str) -> str | None:
    name = name.split("\t", 1)[0].strip()
    if name == "/dev/null":
        return None
    if name.startswith(("a/", "b/")):
        return name[2:]
    return name


def _hunk_lines(hunk: Iterable) -> tuple[list[str], list[str]]:
    """A unidiff hunk -> (source lines, target lines), honouring "No newline at end of file"."""
    source: list[str] = []
    target: list[str] = []
    last_kind = None
    for line in hunk:
        if line.line_type == "\\":
            if last_kind in (" ", "-") and source:
                source[-1] = source[-1].removesuffix("\n")
            if last_kind in (" ", "+") and target:
                target[-1] = target[-1].removesuffix("\n")
            continue
        value = line.value if line.value.endswith("\n") else line.value + "\n"
        if line.line_type in (" ", "-"):
            source.append(value)
        if line.line_type in (" ", "+"):
            target.append(value)
        last_kind = line.line_type
    return source, target


def apply_hunks(path: str, text: str, patched_file, tolerance: int = MAX_HUNK_OFFSET) -> str:
    """Applies one file's hunks to "\\n" text, each within ±tolerance lines of where it says."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    cursor = 0
    drift = 0
    hunks = list(patched_file)
    for number, hunk in enumerate(hunks, 1):
        source, target = _hunk_lines(hunk)
        stated = max(0, hunk.source_start - 1 + (0 if hunk.source_length else 1))
        found = None
        for delta in sorted(range(-tolerance, tolerance + 1), key=abs):
            at = stated + drift + delta
            if at < cursor or at + len(source) > len(lines):
                continue
            if lines[at : at + len(source)] == source:
                found = at
                break
        if found is None:
            header = (
                f"@@ -{hunk.source_start},{hunk.source_length} "
                f"+{hunk.target_start},{hunk.target_length} @@"
            )
            raise BridgeError(
                ErrorCode.PATCH_FAILED,
                f"hunk {number} of {len(hunks)} ({header}) does not fit {path} within "
                f"{tolerance} lines of line {hunk.source_start}",
                path=path,
                hunk=number,
                header=header,
            )
        drift = found - stated
        out.extend(lines[cursor:found])
        out.extend(target)
        cursor = found + len(source)
    out.extend(lines[cursor:])
    return "".join(out)


def parse_diff(diff: str) -> PatchSet:
    try:
        return PatchSet(diff.replace("\r\n", "\n"))
    except UnidiffParseError as exc:
        raise BridgeError(ErrorCode.PATCH_FAILED, f"not a valid unified diff: {exc}") from exc


def plan_diff(diff: str, read: Callable[[str], FileText]) -> CanonicalChange:
    """A unified diff -> canonical change, each hunk checked against the current content."""
    patch = parse_diff(diff)
    if not len(patch):
        raise BridgeError(ErrorCode.PATCH_FAILED, "the diff names no file")
    before: dict[str, FileText] = {}
    after: dict[str, str | None] = {}
    for patched in patch:
        source = _strip_prefix(patched.source_file)
        target = _strip_prefix(patched.target_file)
        if source is not None and target is not None and source != target:
            raise BridgeError(
                ErrorCode.PATCH_FAILED,
                f"renames are not supported ({source} -> {target}); delete and add instead",
                path=source,
            )
        path = target if target is not None else source
        if path is None or path in before:
            raise BridgeError(ErrorCode.PATCH_FAILED, f"the diff names {path} twice or not at all")
        current = read(path)
        before[path] = current
        if source is None:
            if current.exists:
                raise BridgeError(
                    ErrorCode.PATCH_FAILED, f"{path} already exists; the diff creates it", path=path
                )
            after[path] = apply_hunks(path, "", patched)
            continue
        if not current.exists:
            raise BridgeError(ErrorCode.FILE_NOT_FOUND, f"{path} does not exist", path=path)
        new_text = apply_hunks(path, current.text or "", patched)
        after[path] = None if target is None else new_text
    return _finish(before, after)


# --- Canonical form -----------------------------------------------------------------------------


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


def _finish(before: Mapping[str, FileText], after: Mapping[str, str | None]) -> CanonicalChange:
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
    """The canonical diff must parse with unidiff and reproduce the planned content exactly."""
    patch = parse_diff(diff)
    for patched in patch:
        path = _strip_prefix(patched.target_file) or _strip_prefix(patched.source_file) or ""
        result = apply_hunks(path, old[path] or "", patched, tolerance=0)
        expected = new[path]
        if (expected is None and result != "") or (expected is not None and result != expected):
            raise BridgeError(ErrorCode.INTERNAL, f"canonical diff does not reproduce {path}")


def reapply(diff: str, read: Callable[[str], FileText]) -> CanonicalChange:
    """Re-checks a canonical diff against the files as they are now (staleness, apply)."""
    return plan_diff(diff, read)
