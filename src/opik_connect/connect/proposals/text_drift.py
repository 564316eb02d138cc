"""The drift a model's copy of a file carries, and the same correction applied to its new text.

A model copies old text from what it saw: with a line-number gutter, a BOM, curly quotes, spaces
for tabs, shifted indentation, without trailing whitespace. Matching forgives that drift; the
replacement built here gets the *same* correction, so drift shared by the old and the new text
cancels out instead of reaching the file: lines the edit keeps are taken from the file verbatim,
kept characters of a changed line too, and only what the model wrote anew is taken from it.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Opcode = tuple[str, int, int, int, int]

FOLD = str.maketrans(
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
_FOLDS = {chr(a): b for a, b in FOLD.items()}
_FAMILY = {"'": "quote", '"': "quote"}
"""Folds learned together: single and double quotes are one habit of a model."""

INVISIBLE = {
    "\ufeff": "BOM (U+FEFF)",
    "\u200b": "zero-width space (U+200B)",
    "\u200c": "zero-width non-joiner (U+200C)",
    "\u200d": "zero-width joiner (U+200D)",
    "\u2060": "word joiner (U+2060)",
    "\u00ad": "soft hyphen (U+00AD)",
}

_GUTTER = re.compile(r" *(\d+)(?:\t?[|│] ?|\t|→|$)")
"""`  12| code`, `12\tcode`, `    12\t| code`, `12→code`, or a bare number on a blank line."""

TAB_WIDTHS = (4, 8, 2)


def fold(text: str) -> str:
    return text.translate(FOLD)


def split_block(block: str) -> tuple[list[str], bool]:
    """A block of text -> its lines and whether it ended with a newline."""
    trailing = block.endswith("\n")
    body = block[:-1] if trailing else block
    return body.split("\n"), trailing


def indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def line_key(line: str) -> str:
    """What two lines must share to be the same line give or take drift."""
    return fold(line).strip()


def columns(indent: str, tab: int) -> int:
    col = 0
    for ch in indent:
        col = col + tab - col % tab if ch == "\t" else col + 1
    return col


def strip_gutter(old: str, new: str) -> tuple[str, str] | None:
    """old and new without a line-number gutter, when every line of old carries one.

    The numbers of old must run consecutively (a gutter, not data); in new, a line keeps its
    text when it carries no gutter (a line the model added without a number).
    """
    lines, trailing = split_block(old)
    stripped, numbers = [], []
    for line in lines:
        found = _GUTTER.match(line)
        if found is None:
            return None
        numbers.append(int(found.group(1)))
        stripped.append(line[found.end() :])
    if any(b != a + 1 for a, b in itertools.pairwise(numbers)):
        return None
    if not new:
        return "\n".join(stripped) + "\n" * trailing, new
    new_lines, new_trailing = split_block(new)
    kept = [line[m.end() :] if (m := _GUTTER.match(line)) else line for line in new_lines]
    return "\n".join(stripped) + "\n" * trailing, "\n".join(kept) + "\n" * new_trailing


def fit_newline(old: str, new: str, followed_by_newline: bool) -> str:
    """new ending as old does: a line replaced stays a line, a phrase stays a phrase."""
    if not new:
        return new
    if old.endswith("\n") and not new.endswith("\n"):
        return new + "\n"
    if not old.endswith("\n") and new.endswith("\n") and followed_by_newline:
        return new[:-1]
    return new


@dataclass(frozen=True)
class Indentation:
    """How old text's indentation maps onto the file's: a column shift at some tab width."""

    delta: int = 0
    tab: int = 4
    tabs: bool = False
    """Whether the file's matched lines are indented with tabs (new lines then are too)."""
    verbatim: dict[str, str] = field(default_factory=dict)
    """An old indentation seen on matched lines -> the file's indentation there."""

    def render(self, cols: int) -> str:
        cols = max(0, cols)
        if self.tabs:
            return "\t" * (cols // self.tab) + " " * (cols % self.tab)
        return " " * cols

    def of_new(self, indent: str) -> str:
        """Indentation for a line the model added: as the file indents the same old level."""
        if indent in self.verbatim:
            return self.verbatim[indent]
        return self.render(columns(indent, self.tab) + self.delta)

    def beside(self, file_indent: str, old_indent: str, new_indent: str) -> str:
        """Indentation for a changed line, relative to the file line it replaces."""
        if new_indent == old_indent:
            return file_indent
        shift = columns(new_indent, self.tab) - columns(old_indent, self.tab)
        return self.render(columns(file_indent, self.tab) + shift)


def uses_tabs(text: str) -> bool:
    """Whether the file indents with tabs rather than spaces, by its lines."""
    tabbed = len(re.findall(r"(?m)^\t+\S", text))
    return tabbed > len(re.findall(r"(?m)^ +\S", text))


def fit_indentation(
    pairs: Iterable[tuple[str, str]], file_tabs: bool = False
) -> Indentation | None:
    """The single column shift mapping each old line's indentation onto its file line's.

    pairs are (file line, old line) of non-blank lines; None when no tab width gives one shift.
    Of the tab widths that fit, the smallest shift wins (8 spaces for two tabs, not 16). Added
    lines are indented with tabs when the matched lines are, or show none in a tab file.
    """
    pairs = [(indent_of(f), indent_of(o)) for f, o in pairs if o.strip()]
    tabs = any("\t" in f for f, _ in pairs) or (file_tabs and not any(f for f, _ in pairs))
    mapping: dict[str, set[str]] = {}
    for f, o in pairs:
        mapping.setdefault(o, set()).add(f)
    verbatim = {o: next(iter(fs)) for o, fs in mapping.items() if len(fs) == 1}
    best: Indentation | None = None
    for tab in TAB_WIDTHS:
        deltas = {columns(f, tab) - columns(o, tab) for f, o in pairs}
        if len(deltas) > 1:
            continue
        delta = deltas.pop() if deltas else 0
        if best is None or abs(delta) < abs(best.delta):
            best = Indentation(delta, tab, tabs, verbatim)
    return best


def _core(line: str) -> tuple[str, str, str]:
    """A line -> (indentation, text, trailing whitespace)."""
    indent = indent_of(line)
    text = line[len(indent) :].rstrip()
    return indent, text, line[len(indent) + len(text) :]


def learned_folds(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Characters to fold in new text: the model wrote them curly (or long) for plain ones.

    Learned from aligned (file line, old line) pairs, by family: a model that curled one quote
    curls them all, so every curly quote is folded once one is seen folding. Only the folding
    direction is learned, so a plain quote the model wrote is never guessed into a curly one.
    """
    seen: dict[str, set[str]] = {}
    for file_line, old_line in pairs:
        _, f, _ = _core(file_line)
        _, o, _ = _core(old_line)
        if len(f) != len(o):
            continue
        for a, b in zip(o, f, strict=True):
            if a != b or fold(a) != a:
                seen.setdefault(a, set()).add(b)
    families = set()
    for a, targets in seen.items():
        if len(targets) == 1 and (b := next(iter(targets))) != a and fold(a) == b:
            families.add(_FAMILY.get(b, b))
    return {a: b for a, b in _FOLDS.items() if _FAMILY.get(b, b) in families}


@dataclass(frozen=True)
class Correction:
    """The drift learned from matching old text to the file, to apply to the new text."""

    indentation: Indentation
    folds: dict[str, str]

    def new_line(self, line: str) -> str:
        if not line.strip():
            return line
        indent, text, trail = _core(line)
        return self.indentation.of_new(indent) + self._folded(text) + trail

    def changed_line(self, new: str, old: str, file: str) -> str:
        """new replaces old, which matched file: what new kept of old is taken from file.

        Trailing whitespace the model put on both old and new is drift: the file's is kept.
        """
        if not new.strip():
            return new
        fi, f, ft = _core(file)
        oi, o, ot = _core(old)
        ni, n, nt = _core(new)
        indent = self.indentation.beside(fi, oi, ni)
        if len(f) != len(o) or fold(f) != fold(o):
            return indent + self._folded(n) + nt
        parts = []
        matcher = difflib.SequenceMatcher(None, o, n, autojunk=False)
        for tag, a1, a2, b1, b2 in matcher.get_opcodes():
            parts.append(f[a1:a2] if tag == "equal" else self._folded(n[b1:b2]))
        return indent + "".join(parts) + (ft if nt == ot and ot else nt)

    def _folded(self, text: str) -> str:
        return text.translate(str.maketrans(self.folds)) if self.folds else text

    def rebuild(
        self,
        file_lines: Sequence[str],
        old_lines: Sequence[str],
        new_lines: Sequence[str],
        opcodes: Sequence[Opcode] | None = None,
    ) -> list[str]:
        """The new lines as they go into the file; file_lines[i] is what old_lines[i] matched."""
        if opcodes is None:
            matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
            opcodes = matcher.get_opcodes()
        out: list[str] = []
        for tag, i1, i2, j1, j2 in opcodes:
            if tag == "equal":
                out.extend(file_lines[i1:i2])
                continue
            for k, line in enumerate(new_lines[j1:j2]):
                if i1 + k < i2:
                    out.append(self.changed_line(line, old_lines[i1 + k], file_lines[i1 + k]))
                else:
                    out.append(self.new_line(line))
        return out


def correction_for(
    file_lines: Sequence[str],
    old_lines: Sequence[str],
    partial_first: bool = False,
    file_tabs: bool = False,
) -> Correction | None:
    """The correction that maps old_lines onto file_lines, or None when no single one does.

    A partial first line (old text starting mid-line) has no indentation to learn from.
    """
    pairs = list(zip(file_lines, old_lines, strict=True))
    indentation = fit_indentation(pairs[1:] if partial_first else pairs, file_tabs)
    if indentation is None:
        return None
    return Correction(indentation, learned_folds(pairs))


def describe_indent(indent: str) -> str:
    if not indent:
        return "no indentation"
    tabs, spaces = indent.count("\t"), indent.count(" ")
    parts = [f"{tabs} tab{'s' * (tabs != 1)}"] * bool(tabs)
    parts += [f"{spaces} space{'s' * (spaces != 1)}"] * bool(spaces)
    return " and ".join(parts)
