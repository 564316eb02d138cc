"""String edits: find each old_string in its file, give or take drift, and apply edits in order.

Edits to one file apply in order, each to the result of the one before (the semantics of
Anthropic's text-editor tool). One old_string is looked for in tiers, the first tier that finds
it deciding: exactly; with Unicode quotes, dashes and spaces folded; line by line ignoring
trailing whitespace and a consistent indentation shift (tabs for spaces too), the first line
possibly partial. Then the same again without a line-number gutter, when old_string carries one.
More than one match in the deciding tier is refused, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from opik_connect.connect.proposals.file_text import BOM, FileText
from opik_connect.connect.proposals.match_errors import ambiguous, not_found
from opik_connect.connect.proposals.text_drift import (
    Correction,
    Indentation,
    columns,
    correction_for,
    fit_newline,
    fold,
    line_key,
    split_block,
    strip_gutter,
    uses_tabs,
)
from opik_connect.protocol import BridgeError, ErrorCode, FileEdit


@dataclass(frozen=True)
class Located:
    """Where an edit applies in the text, and what goes there."""

    start: int
    end: int
    replacement: str


def _occurrences(text: str, needle: str) -> list[int]:
    """Start offsets of every occurrence, overlapping ones included."""
    found = []
    at = text.find(needle)
    while at != -1:
        found.append(at)
        at = text.find(needle, at + 1)
    return found


def _located(
    text: str, start: int, end: int, old: str, new: str, fix: Correction | None
) -> Located:
    """The replacement for text[start:end]: new, with the drift the match forgave undone.

    A match that starts after part of its line's indentation is widened to the line's start,
    so lines new_string adds before its first are indented like the rest.
    """
    new = fit_newline(text[start:end], new, text.startswith("\n", end))
    if fix is None or not new:
        return Located(start, end, new)
    line_start = text.rfind("\n", 0, start) + 1
    if "\n" in new.removesuffix("\n") and not text[line_start:start].strip(" \t"):
        start = line_start
    region = text[start:end]
    file_lines, _ = split_block(region)
    old_lines, _ = split_block(old)
    new_lines, trailing = split_block(new)
    rebuilt = fix.rebuild(file_lines, old_lines, new_lines)
    return Located(start, end, "\n".join(rebuilt) + "\n" * trailing)


def _exact(text: str, old: str, new: str) -> list[Located]:
    file_tabs = uses_tabs(text)
    hits = []
    for at in _occurrences(text, old):
        fix = _exact_fix(text, at, old, new, file_tabs)
        hits.append(_located(text, at, at + len(old), old, new, fix))
    return hits


def _exact_fix(text: str, at: int, old: str, new: str, file_tabs: bool) -> Correction | None:
    """The indentation lines new_string adds need when old_string shows none of the file's.

    A one-line old_string found after part of its line's indentation: the model dropped it, so
    added lines are indented from the same base. An old_string with no indented line in a tab
    file: added lines' spaces become tabs.
    """
    prefix = text[text.rfind("\n", 0, at) + 1 : at]
    one_line = "\n" not in old.removesuffix("\n")
    adds_lines = "\n" in new.removesuffix("\n")
    if one_line and adds_lines and prefix and not prefix.strip(" \t"):
        tabs = file_tabs or "\t" in prefix
        return Correction(Indentation(delta=columns(prefix, 4), tabs=tabs), {})
    if file_tabs and not any(line[:1] in (" ", "\t") for line in old.split("\n")):
        return Correction(Indentation(tabs=True), {})
    return None


def _folded(text: str, old: str, new: str) -> list[Located]:
    """Matches once Unicode quotes, dashes and spaces are folded (offsets are kept)."""
    folded_text, folded_old = fold(text), fold(old)
    if folded_text == text and folded_old == old:
        return []
    hits = []
    file_tabs = uses_tabs(text)
    old_lines, _ = split_block(old)
    for at in _occurrences(folded_text, folded_old):
        file_lines, _ = split_block(text[at : at + len(old)])
        fix = correction_for(file_lines, old_lines) or Correction(Indentation(), {})
        if (base := _exact_fix(text, at, old, new, file_tabs)) is not None:
            fix = Correction(base.indentation, fix.folds)
        hits.append(_located(text, at, at + len(old), old, new, fix))
    return hits


def _line_starts(text: str) -> list[int]:
    return [0, *(m.end() for m in re.finditer("\n", text))]


def _windows(text: str, old: str, new: str) -> list[Located]:
    """Matches line by line, give or take trailing whitespace and one indentation shift.

    The first line may be partial (old_string starting mid-line, at a word's start) or
    differently indented from the rest; the shift is then learned from the other lines. Whole
    lines matching explain old_string better than a partial first line, so they go first.
    """
    old_lines, trailing = split_block(old)
    keys = [line_key(line) for line in old_lines]
    if not any(keys):
        return []
    file_lines = text.split("\n")
    file_keys = [line_key(line) for line in file_lines]
    starts = _line_starts(text)
    file_tabs = uses_tabs(text)
    n = len(keys)
    full: list[Located] = []
    partial: list[Located] = []
    for i in range(len(file_lines) - n + 1):
        if file_keys[i + 1 : i + n] != keys[1:] or not file_keys[i].endswith(keys[0]):
            continue
        window = file_lines[i : i + n]
        last = i + n - 1
        end = starts[last] + len(file_lines[last]) + (trailing and last < len(file_lines) - 1)
        if file_keys[i] == keys[0]:
            fix = correction_for(window, old_lines, file_tabs=file_tabs)
            if fix is not None:
                full.append(_located(text, starts[i], end, old, new, fix))
                continue
        col = len(fold(window[0]).rstrip()) - len(keys[0])
        if n == 1 or not keys[0] or _splits_a_word(window[0], col):
            continue
        suffix = [window[0][col:], *window[1:]]
        fix = correction_for(suffix, old_lines, partial_first=True, file_tabs=file_tabs)
        if fix is not None:
            partial.append(_located(text, starts[i] + col, end, old, new, fix))
    return full or partial


def _splits_a_word(line: str, col: int) -> bool:
    """Whether a partial first line would start inside a word (`if` within `elif`)."""
    return (
        0 < col < len(line)
        and (line[col - 1].isalnum() or line[col - 1] == "_")
        and (line[col].isalnum() or line[col] == "_")
    )


Tier = Callable[[str, str, str], list[Located]]
TIERS: tuple[Tier, ...] = (_exact, _folded, _windows)


def locate(path: str, text: str, old: str, new: str, index: int) -> Located:
    """Where one edit applies in text and what goes there; match_ambiguous or match_not_found."""
    old, new = old.replace("\r\n", "\n"), new.replace("\r\n", "\n")
    if old.startswith(BOM) and not text.startswith(BOM):
        old, new = old[1:], new.removeprefix(BOM)
    variants = [(old, new)]
    if (bare := strip_gutter(old, new)) is not None:
        variants.append(bare)
    for o, n in variants:
        for tier in TIERS:
            hits = tier(text, o, n)
            if len(hits) == 1:
                return hits[0]
            if hits:
                lines = [text.count("\n", 0, h.start) + 1 for h in hits]
                raise ambiguous(path, index, lines, normalised=tier is not _exact)
    raise not_found(path, text, variants[-1][0], index)


def _matches(path: str, text: str, edit: FileEdit, index: int) -> bool:
    try:
        locate(path, text, edit.old_string, edit.new_string, index)
    except BridgeError:
        return False
    return True


def apply_edits(path: str, current: FileText, edits: list[tuple[int, FileEdit]]) -> str | None:
    """New text for one file after its edits, in order; None when the file is deleted."""
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
    text = current.text
    applied: list[int] = []
    for index, edit in edits:
        text = _apply_one(path, current, text, edit, index, applied)
        applied.append(index)
    return text


def _apply_one(
    path: str, current: FileText, text: str | None, edit: FileEdit, index: int, applied: list[int]
) -> str:
    """text after one edit; `applied` are the edits of this file already applied to it."""
    new = edit.new_string.replace("\r\n", "\n")
    if edit.delete:
        raise BridgeError(
            ErrorCode.EDITS_OVERLAP,
            f"edit {index} deletes {path}, which other edits change",
            path=path,
            edits=[index],
        )
    if text is None:
        if edit.old_string != "":
            raise BridgeError(ErrorCode.FILE_NOT_FOUND, f"{path} does not exist", path=path)
        return new
    if edit.old_string == "":
        if text:
            raise BridgeError(
                ErrorCode.INVALID_ARGS,
                f"edit {index}: old_string is empty but {path} exists and is not empty; quote "
                "the text to replace (an empty old_string only creates a file)",
                path=path,
                edit=index,
            )
        return new
    if edit.old_string == edit.new_string:
        raise BridgeError(
            ErrorCode.NO_CHANGE,
            f"edit {index}: old_string and new_string are the same",
            path=path,
            edit=index,
        )
    try:
        found = locate(path, text, edit.old_string, edit.new_string, index)
    except BridgeError as exc:
        before = current.text
        if exc.code != ErrorCode.MATCH_NOT_FOUND or not applied or before is None:
            raise
        if not _matches(path, before, edit, index):
            raise
        raise not_found(path, text, edit.old_string, index, prior=applied) from exc
    return text[: found.start] + found.replacement + text[found.end :]
