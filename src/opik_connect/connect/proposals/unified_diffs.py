"""Unified diffs: read by their lines (not their counts) and apply each hunk where its text is.

A hunk's header counts are hints: a hunk is as long as its lines, so a miscounted header can
neither truncate it nor swallow the next one. A hunk is located by its content across the whole
file (like `patch`'s fuzz, but without guessing): at its stated place (after the drift of the
hunks before it) if it is there, else at its only place in the file, else at its only place
within MAX_HUNK_OFFSET lines; then the same again give or take whitespace drift in its lines.
More than one candidate is refused with their lines, as is a hunk whose text is not in the file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from opik_connect.connect.proposals.match_errors import closest_region, explain
from opik_connect.connect.proposals.text_drift import (
    Correction,
    Opcode,
    correction_for,
    line_key,
)
from opik_connect.connect.sandbox.secret_redaction import redact_lines
from opik_connect.protocol import BridgeError, ErrorCode

MAX_HUNK_OFFSET = 10
"""How far from its stated place a hunk may pick the only one of several matches near there."""

_HEADER = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass
class Hunk:
    """One hunk: its lines as (kind, text) with kind in " -+", and its header's hints."""

    number: int
    header: str
    source_start: int | None
    source_length: int = 0
    target_length: int = 0
    lines: list[tuple[str, str]] = field(default_factory=list)
    raw_blank: list[bool] = field(default_factory=list)
    """Whether each line was an empty diff line (a context line that lost its space)."""
    source_eol: bool | None = None
    """False when "\\ No newline at end of file" follows the last source line; None: not said."""
    target_eol: bool | None = None

    def source(self) -> list[str]:
        return [text for kind, text in self.lines if kind != "+"]

    def target(self) -> list[str]:
        return [text for kind, text in self.lines if kind != "-"]

    def opcodes(self) -> list[Opcode]:
        """The hunk's own alignment of source and target lines, as difflib opcodes."""
        out: list[Opcode] = []
        i = j = 0
        k = 0
        while k < len(self.lines):
            if self.lines[k][0] == " ":
                run = k
                while k < len(self.lines) and self.lines[k][0] == " ":
                    k += 1
                out.append(("equal", i, i + k - run, j, j + k - run))
                i, j = i + k - run, j + k - run
                continue
            removed = added = 0
            while k < len(self.lines) and self.lines[k][0] != " ":
                removed += self.lines[k][0] == "-"
                added += self.lines[k][0] == "+"
                k += 1
            out.append(("replace", i, i + removed, j, j + added))
            i, j = i + removed, j + added
        return out


@dataclass
class FilePatch:
    """One file's part of a diff: its names (None for /dev/null) and hunks."""

    source: str | None
    target: str | None
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.target or self.source or ""


def _name(header: str) -> str | None:
    name = header.split("\t", 1)[0].strip()
    if name == "/dev/null":
        return None
    return name[2:] if name.startswith(("a/", "b/")) else name


def _is_file_header(lines: Sequence[str], i: int) -> bool:
    return lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")


def _read_hunk(lines: Sequence[str], i: int, hunk: Hunk) -> int:
    """Reads hunk lines from lines[i] until a header or prose; returns the next index."""
    while i < len(lines):
        line = lines[i]
        if line.startswith(("@@", "diff ")):
            break
        counted = len(hunk.source())
        if _is_file_header(lines, i) and counted >= hunk.source_length:
            break
        if line.startswith("\\"):
            last = hunk.lines[-1][0] if hunk.lines else " "
            if last in " -":
                hunk.source_eol = False
            if last in " +":
                hunk.target_eol = False
        elif line == "" or line[0] in " -+":
            kind, text = (" ", "") if line == "" else (line[0], line[1:])
            hunk.lines.append((kind, text))
            hunk.raw_blank.append(line == "")
        else:
            break
        i += 1
    while hunk.raw_blank and hunk.raw_blank[-1] and len(hunk.source()) > hunk.source_length:
        hunk.lines.pop()
        hunk.raw_blank.pop()
    return i


def parse_diff(diff: str) -> list[FilePatch]:
    """A unified diff -> its files and hunks; patch_failed naming the hunk that is malformed."""
    lines = diff.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    files: list[FilePatch] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _is_file_header(lines, i):
            files.append(FilePatch(_name(line[4:]), _name(lines[i + 1][4:])))
            i += 2
            continue
        if line.startswith(("rename from ", "copy from ")):
            raise BridgeError(
                ErrorCode.PATCH_FAILED, "renames are not supported; delete and add instead"
            )
        if line.startswith(("Binary files ", "GIT binary patch")):
            raise BridgeError(ErrorCode.PATCH_FAILED, "binary diffs are not supported")
        if not line.startswith("@@"):
            if line[:1] in ("+", "-") and files and files[-1].hunks:
                raise _malformed(
                    files[-1],
                    files[-1].hunks[-1],
                    f"is followed by {line!r}, a '{line[0]}' line outside any hunk",
                )
            i += 1
            continue
        if not files:
            raise BridgeError(
                ErrorCode.PATCH_FAILED,
                "the diff has a hunk before any '--- a/path' and '+++ b/path' lines, so it names "
                "no file",
            )
        patch = files[-1]
        number = len(patch.hunks) + 1
        found = _HEADER.match(line)
        header = line if found is None else found.group(0)
        hunk = Hunk(number, header, None)
        if found is not None:
            hunk.source_start = int(found.group(1))
            hunk.source_length = 1 if found.group(2) is None else int(found.group(2))
            hunk.target_length = 1 if found.group(4) is None else int(found.group(4))
        i = _read_hunk(lines, i + 1, hunk)
        if not hunk.lines:
            raise _malformed(patch, hunk, "has no lines")
        if i < len(lines) and _stray(lines, i) and _short(hunk):
            raise _malformed(
                patch,
                hunk,
                f"stops at {lines[i]!r}, which is not a diff line (context lines start with a "
                "space, removed lines with '-', added lines with '+'), before its header's "
                "counts are reached",
            )
        patch.hunks.append(hunk)
    return files


def _stray(lines: Sequence[str], i: int) -> bool:
    return not lines[i].startswith(("@@", "diff ")) and not _is_file_header(lines, i)


def _short(hunk: Hunk) -> bool:
    return len(hunk.source()) < hunk.source_length or len(hunk.target()) < hunk.target_length


def _malformed(patch: FilePatch, hunk: Hunk, words: str) -> BridgeError:
    return BridgeError(
        ErrorCode.PATCH_FAILED,
        f"hunk {hunk.number} of {patch.path} ({hunk.header}) {words}",
        path=patch.path,
        hunk=hunk.number,
        header=hunk.header,
    )


def _failed(path: str, hunk: Hunk, of: int, words: str, **details: object) -> BridgeError:
    return BridgeError(
        ErrorCode.PATCH_FAILED,
        f"hunk {hunk.number} of {of} ({hunk.header}) in {path}: {words}",
        path=path,
        hunk=hunk.number,
        header=hunk.header,
        **details,
    )


@dataclass
class _Place:
    at: int
    fix: Correction | None
    """None when the hunk's lines are in the file exactly."""


def _candidates(lines: Sequence[str], source: Sequence[str], loose: bool) -> list[_Place]:
    n = len(source)
    out = []
    keys = [line_key(line) for line in source] if loose else None
    file_keys = [line_key(line) for line in lines] if loose else None
    for at in range(len(lines) - n + 1):
        if not loose:
            if lines[at : at + n] == source:
                out.append(_Place(at, None))
            continue
        if file_keys[at : at + n] == keys:
            fix = correction_for(lines[at : at + n], source)
            if fix is not None:
                out.append(_Place(at, fix))
    return out


def _choose(
    path: str, hunk: Hunk, of: int, places: list[_Place], cursor: int, expected: int | None
) -> _Place | None:
    """The place a hunk applies among its matches, or None; ambiguity and disorder refused."""
    valid = [p for p in places if p.at >= cursor]
    if places and not valid:
        raise _failed(
            path,
            hunk,
            of,
            f"its text is only at line {places[-1].at + 1}, before the end of the hunk before "
            f"it (line {cursor}); hunks must be in file order and must not overlap",
        )
    stated = [p for p in valid if p.at == expected]
    if stated:
        return stated[0]
    if len(valid) == 1:
        return valid[0]
    near = [p for p in valid if expected is not None and abs(p.at - expected) <= MAX_HUNK_OFFSET]
    if len(near) == 1:
        return near[0]
    if not valid:
        return None
    where = ", ".join(str(p.at + 1) for p in valid[:10])
    said = "no line" if expected is None else f"line {expected + 1}"
    raise _failed(
        path,
        hunk,
        of,
        f"its text fits {len(valid)} places (lines {where}), none of them at {said} where its "
        "header (with the hunks before it) puts it; include more context lines to make it unique",
        lines=[p.at + 1 for p in valid],
    )


def _not_there(path: str, lines: Sequence[str], hunk: Hunk, of: int) -> BridgeError:
    """patch_failed for a hunk whose text is nowhere: invented lines, or which line differs."""
    source = hunk.source()
    closest = closest_region(redact_lines(list(lines))[0], source)
    present = {line_key(line) for line in lines}
    invented = [k for k, line in enumerate(source) if line_key(line) not in present]
    if invented:
        k = invented[0]
        words = (
            f"its line {source[k]!r} (line {k + 1} of its context and '-' lines) is nowhere in "
            "the file; context and '-' lines must be copied from the file, not written."
        )
    else:
        words = f"its text is not in the file. {explain(source, closest)}"
    return _failed(
        path,
        hunk,
        of,
        f"{words} The closest text is at {closest.span} (quoted in details.closest).",
        closest_line=closest.line,
        closest=closest.quoted(),
    )


def _insertion_place(path: str, lines: Sequence[str], hunk: Hunk, of: int, at: int | None) -> int:
    if at is None:
        raise _failed(
            path, hunk, of, "it only adds lines and its header has no line number to place them"
        )
    if not 0 <= at <= len(lines):
        raise _failed(path, hunk, of, f"it adds lines at line {at + 1}, past the end of the file")
    return at


def apply_hunks(path: str, text: str, hunks: Sequence[Hunk], strict: bool = False) -> str:
    """Applies one file's hunks to "\\n" text; strict: each exactly where its header says."""
    lines = text.split("\n") if text else []
    eol = text.endswith("\n") or not text
    if text.endswith("\n"):
        lines.pop()
    out: list[str] = []
    cursor = drift = 0
    for hunk in hunks:
        source, target = hunk.source(), hunk.target()
        stated = None
        if hunk.source_start is not None:
            stated = max(0, hunk.source_start - (1 if hunk.source_length else 0))
        expected = None if stated is None else stated + drift
        if not source:
            place = _Place(_insertion_place(path, lines, hunk, len(hunks), expected), None)
        elif strict:
            exact = expected is not None and lines[expected : expected + len(source)] == source
            if not exact:
                raise _failed(path, hunk, len(hunks), "it does not fit where its header says")
            place = _Place(expected or 0, None)
        else:
            place = _choose(
                path, hunk, len(hunks), _candidates(lines, source, False), cursor, expected
            ) or _choose(path, hunk, len(hunks), _candidates(lines, source, True), cursor, expected)
            if place is None:
                raise _not_there(path, lines, hunk, len(hunks))
        if place.at < cursor:
            raise _failed(path, hunk, len(hunks), "it overlaps the hunk before it")
        if stated is not None:
            drift = place.at - stated
        out.extend(lines[cursor : place.at])
        matched = lines[place.at : place.at + len(source)]
        fix = place.fix
        out.extend(target if fix is None else fix.rebuild(matched, source, target, hunk.opcodes()))
        cursor = place.at + len(source)
        if cursor == len(lines):
            eol = _eol_after(hunk, eol)
    out.extend(lines[cursor:])
    return "\n".join(out) + "\n" * (eol and bool(out))


def _eol_after(hunk: Hunk, eol: bool) -> bool:
    """Whether the file ends with a newline after a hunk that reaches its end."""
    if hunk.target_eol is False:
        return False
    if hunk.source_eol is False:
        return True
    return eol
