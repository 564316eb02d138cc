"""Errors a model can act on when its old text is not in the file, or is there more than once.

Each says where the nearest text is and which line differs and how (content, whitespace, quotes,
an invisible character), so the next attempt can copy the file exactly. The closest region is
quoted once, in `details.closest`; the message points to it instead of repeating it.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from opik_connect.connect.proposals.text_drift import (
    INVISIBLE,
    describe_indent,
    indent_of,
    line_key,
)
from opik_connect.connect.sandbox.secret_redaction import redact_lines
from opik_connect.protocol import BridgeError, ErrorCode

MAX_LINES_LISTED = 10
"""Ambiguous matches beyond this many are counted, not listed."""
MAX_CLOSE_LOOKS = 400
"""At most this many windows are compared character by character for the closest region."""


@dataclass(frozen=True)
class Closest:
    """The file's lines most like the text looked for: first line number (1-based) and lines."""

    line: int
    lines: list[str]

    def quoted(self) -> str:
        return "\n".join(f"{self.line + k:>5}| {text}" for k, text in enumerate(self.lines))

    @property
    def span(self) -> str:
        last = self.line + len(self.lines) - 1
        return f"line {self.line}" if last == self.line else f"lines {self.line}-{last}"


def closest_region(file_lines: Sequence[str], wanted: Sequence[str]) -> Closest:
    """The window of the file, as long as `wanted`, most like it. Callers pass the redacted
    lines: the choice and the quote (redacted before its gutter) then say nothing of a secret."""
    n = max(1, len(wanted))
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2("\n".join(wanted))
    best = (-1.0, 0)
    for i in _likely_windows(file_lines, wanted, n):
        matcher.set_seq1("\n".join(file_lines[i : i + n]))
        if matcher.real_quick_ratio() <= best[0] or matcher.quick_ratio() <= best[0]:
            continue
        ratio = matcher.ratio()
        if ratio > best[0]:
            best = (ratio, i)
    start = best[1]
    return Closest(start + 1, list(file_lines[start : start + n]))


def _likely_windows(file_lines: Sequence[str], wanted: Sequence[str], n: int) -> list[int]:
    """Window starts worth comparing closely: those sharing the most lines with `wanted`.

    Comparing every window character by character is slow on a long file; a window that
    shares fewer whole lines (give or take whitespace) than the best one is rarely closer.
    """
    starts = range(max(1, len(file_lines) - n + 1))
    keys = {line_key(line) for line in wanted} - {""}
    shared = [line_key(line) in keys for line in file_lines]
    counts = [sum(shared[i : i + n]) for i in starts]
    top = max(counts, default=0)
    if top == 0:
        return list(starts)
    return [i for i in starts if counts[i] >= top - 1][:MAX_CLOSE_LOOKS]


def _invisible(text: str) -> str | None:
    for ch, name in INVISIBLE.items():
        if ch in text:
            return name
    return None


def _first_difference(wanted: str, have: str) -> str:
    """Where the line stops matching, quoting only the old text (the file's is in closest).

    File text stays out of the message: a cut-off secret might slip past redaction, which
    sees the closest region's lines whole.
    """
    w, h = wanted.strip(), have.strip()
    col = next(
        (k for k, (a, b) in enumerate(zip(w, h, strict=False)) if a != b), min(len(w), len(h))
    )
    shown = w[col : col + 24] or "nothing more"
    return f"from column {len(indent_of(have)) + col + 1} of the file's line: it has {shown!r}"


def _difference(wanted: str, have: str) -> tuple[int, str] | None:
    """How one line of the old text differs from the file's line: (severity, words), or None."""
    if wanted == have:
        return None
    if (name := _invisible(wanted)) and not _invisible(have):
        return 0, f"contains an invisible {name}, which the file's line does not"
    if line_key(wanted) != line_key(have):
        return 1, f"differs {_first_difference(wanted, have)}"
    if wanted.strip() != have.strip():
        pair = next((a, b) for a, b in zip(wanted.strip(), have.strip(), strict=False) if a != b)
        return 2, f"differs in quotes or dashes: it has {pair[0]!r} where the file has {pair[1]!r}"
    if indent_of(wanted) != indent_of(have):
        return 3, (
            f"differs in indentation: the file has {describe_indent(indent_of(have))}, "
            f"old text {describe_indent(indent_of(wanted))}"
        )
    return 4, "differs only in trailing whitespace"


def explain(wanted: Sequence[str], closest: Closest) -> str:
    """Which line of the old text differs from the closest region, and how (the worst one)."""
    found = []
    for k, (line, have) in enumerate(zip(wanted, closest.lines, strict=False)):
        diff = _difference(line, have)
        if diff is not None:
            found.append((diff[0], k, diff[1]))
    if not found:
        return "Its lines are in the file but not one after the other."
    _, k, words = min(found)
    return f"Its line {k + 1} (file line {closest.line + k}) {words}."


def _listed(lines: Sequence[int]) -> str:
    shown = ", ".join(map(str, lines[:MAX_LINES_LISTED]))
    more = len(lines) - MAX_LINES_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def not_found(path: str, text: str, old: str, index: int, prior: Sequence[int] = ()) -> BridgeError:
    """match_not_found for one edit: the closest region, the differing line, what to do."""
    wanted = old.removesuffix("\n").split("\n")
    closest = closest_region(redact_lines(text.split("\n"))[0], wanted)
    message = (
        f"edit {index}: old_string not found in {path}. The closest text is at {closest.span} "
        f"(quoted in details.closest). {explain(wanted, closest)}"
    )
    if prior:
        message += (
            f" It matches the file as it was before edit {_listed(list(prior))}: edits to one "
            "file apply in order, each to the result of the one before, so write old_string "
            "against that result."
        )
    else:
        message += " Copy old_string from the file exactly."
    return BridgeError(
        ErrorCode.MATCH_NOT_FOUND,
        message,
        path=path,
        edit=index,
        closest_line=closest.line,
        closest=closest.quoted(),
    )


def ambiguous(path: str, index: int, lines: Sequence[int], normalised: bool) -> BridgeError:
    """match_ambiguous for one edit: where it matches and how to make it unique."""
    how = " after normalising whitespace and punctuation" if normalised else ""
    return BridgeError(
        ErrorCode.MATCH_AMBIGUOUS,
        f"edit {index}: old_string matches {len(lines)} places in {path}{how} (lines "
        f"{_listed(lines)}); include more surrounding lines in old_string so that it matches "
        "exactly one place",
        path=path,
        edit=index,
        lines=list(lines),
    )
