"""A drift corpus: model-style edits against real Python files (the stdlib), one kind of drift each.

A case is a file set, a proposal (edits or a unified diff) carrying one kind of drift models
produce, and what a correct engine does with it: write the intended bytes (apply kinds) or refuse
(refusal kinds). `score` runs one case through the engine: "applied" (the intended bytes),
"refused" (a BridgeError) or "wrong" (anything else written; for a refusal kind, anything
written). bench/edit_engine.py scores every kind; the tests run a sample.
"""

from __future__ import annotations

import difflib
import random
import re
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from opik_connect.connect.proposals.edit_engine import decode_file, plan_diff, plan_edits
from opik_connect.protocol import BridgeError, FileEdit

SOURCES = [
    "textwrap",
    "shlex",
    "string",
    "fnmatch",
    "glob",
    "heapq",
    "calendar",
    "csv",
    "gettext",
    "netrc",
    "pprint",
    "queue",
    "sched",
    "tabnanny",
    "tokenize",
    "uuid",
    "colorsys",
    "json/encoder",
    "json/decoder",
    "http/cookies",
    "email/utils",
    "copy",
    "random",
    "fractions",
]
PATH = "mod.py"
MARK = "  # edited"
CURLY = {"'": ("\u2018", "\u2019"), '"': ("\u201c", "\u201d")}


@dataclass
class Case:
    kind: str
    files: dict[str, bytes]
    edits: list[FileEdit] | None = None
    diff: str | None = None
    expected: dict[str, bytes] | None = None
    """The intended bytes per path; None for a refusal kind."""
    source: str = ""


@dataclass
class Source:
    name: str
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


def load_sources() -> list[Source]:
    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for name in SOURCES:
        path = root / f"{name}.py"
        if path.is_file():
            text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
            out.append(Source(name, text.rstrip("\n").split("\n")))
    return out


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


@dataclass
class Block:
    """A unique run of lines, and the intended change to it (a comment added, a line inserted)."""

    start: int
    old: list[str]
    new: list[str]


def _pick_block(rng: random.Random, src: Source, want: Callable[[list[str]], bool]) -> Block:
    keys = [line.strip() for line in src.lines]
    for _ in range(2000):
        size = rng.randint(2, 6)
        start = rng.randrange(0, len(src.lines) - size)
        old = src.lines[start : start + size]
        if not old[0].strip() or not old[-1].strip() or any(x.endswith("\\") for x in old):
            continue
        if any(x.rstrip() != x for x in old) or not want(old):
            continue
        window = keys[start : start + size]
        if sum(keys[i : i + size] == window for i in range(len(keys) - size + 1)) != 1:
            continue
        return Block(start, old, _change(rng, old))
    raise LookupError(f"no block in {src.name}")


def _change(rng: random.Random, old: list[str]) -> list[str]:
    """A comment appended to one line and a comment line inserted: valid wherever it lands."""
    new = list(old)
    at = rng.choice([k for k, line in enumerate(new) if line.strip()])
    new[at] += MARK
    after = rng.randrange(len(new) - 1)
    indent = _indent(new[after + 1]) if new[after + 1].strip() else _indent(new[after])
    new.insert(after + 1, f"{indent}# inserted")
    return new


def _intended(src: Source, block: Block) -> str:
    lines = src.lines[: block.start] + block.new + src.lines[block.start + len(block.old) :]
    return "".join(line + "\n" for line in lines)


def _edit_case(kind: str, src: Source, files: dict[str, str], old: str, new: str, want: str):
    return Case(
        kind,
        {p: t.encode() for p, t in files.items()},
        edits=[FileEdit(path=PATH, old_string=old, new_string=new)],
        expected={PATH: want.encode()},
        source=src.name,
    )


def _join(lines: list[str]) -> str:
    return "\n".join(lines)


def _curl(text: str) -> str:
    out = []
    for k, ch in enumerate(text):
        if ch in CURLY:
            opening = k == 0 or text[k - 1] in " ([{=,\t"
            out.append(CURLY[ch][0 if opening else 1])
        else:
            out.append(ch)
    return "".join(out)


def _has_quotes(lines: list[str]) -> bool:
    return any("'" in x or '"' in x for x in lines)


def _to_tabs(line: str) -> str:
    spaces = len(line) - len(line.lstrip(" "))
    return "\t" * (spaces // 4) + line[spaces:] if spaces % 4 == 0 else line


def k_exact(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    return _edit_case("exact", src, {PATH: src.text}, _join(b.old), _join(b.new), _intended(src, b))


def k_old_trailing_newline(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    old, new = _join(b.old) + "\n", _join(b.new)
    return _edit_case("old ends in newline", src, {PATH: src.text}, old, new, _intended(src, b))


def k_new_trailing_newline(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    old, new = _join(b.old), _join(b.new) + "\n"
    return _edit_case("new ends in newline", src, {PATH: src.text}, old, new, _intended(src, b))


def k_curly_quotes(rng, src):
    b = _pick_block(rng, src, _has_quotes)
    b.new[b.new.index(next(x for x in b.new if x.endswith(MARK)))] += " 'quoted'"
    old, new = _curl(_join(b.old)), _curl(_join(b.new))
    return _edit_case("curly quotes in both", src, {PATH: src.text}, old, new, _intended(src, b))


def _gutter(lines: list[str], first: int, style: str) -> str:
    return _join([style.format(n=first + k, line=line) for k, line in enumerate(lines)])


def k_gutter_pipe(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    old = _gutter(b.old, b.start + 1, "{n:>6}| {line}")
    new = _gutter(b.new, b.start + 1, "{n:>6}| {line}")
    return _edit_case("gutter '  12| '", src, {PATH: src.text}, old, new, _intended(src, b))


def k_gutter_tab(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    old = _gutter(b.old, b.start + 1, "{n:>6}\t{line}")
    new = _gutter(b.new, b.start + 1, "{n:>6}\t{line}")
    return _edit_case("gutter '12<tab>'", src, {PATH: src.text}, old, new, _intended(src, b))


def k_gutter_old_only(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    old = _gutter(b.old, b.start + 1, "{n}\t| {line}")
    return _edit_case(
        "gutter both, old only", src, {PATH: src.text}, old, _join(b.new), _intended(src, b)
    )


def k_sequential(rng, src):
    def fits(lines: list[str]) -> bool:
        head = lines[:3]
        return len(head) == 3 and all(head) and src.text.count(_join(head[:2])) == 1

    b = _pick_block(rng, src, fits)
    first_old = _join(b.old[:2])
    first_new = _join([b.old[0] + MARK, b.old[1]])
    second_old = _join([b.old[0] + MARK, b.old[1], b.old[2]])
    second_new = _join([b.old[0] + MARK, b.old[1] + MARK, b.old[2]])
    b.new = [b.old[0] + MARK, b.old[1] + MARK, *b.old[2:]]
    case = _edit_case("edits in sequence", src, {PATH: src.text}, "", "", _intended(src, b))
    case.edits = [
        FileEdit(path=PATH, old_string=first_old, new_string=first_new),
        FileEdit(path=PATH, old_string=second_old, new_string=second_new),
    ]
    return case


def _tab_round_trip(lines: list[str]) -> bool:
    tabbed = any(x.startswith("\t") for x in lines)
    return tabbed and all(_to_tabs(x.replace("\t", "    ")) == x for x in lines)


def k_tabs(rng, src):
    tabbed = Source(src.name, [_to_tabs(line) for line in src.lines])
    b = _pick_block(rng, tabbed, _tab_round_trip)
    old = _join([line.replace("\t", "    ") for line in b.old])
    new = _join([line.replace("\t", "    ") for line in b.new])
    want = _intended(tabbed, b)
    return _edit_case("tab file, spaces in old", src, {PATH: tabbed.text}, old, new, want)


def k_partial_first_line(rng, src):
    b = _pick_block(rng, src, lambda lines: bool(_indent(lines[0])))
    first = "\t" if rng.random() < 0.5 else _indent(b.old[0]) + "  "
    old = _join([first + b.old[0].lstrip(), *b.old[1:]])
    new = _join([first + b.new[0].lstrip(), *b.new[1:]])
    return _edit_case("partial first line", src, {PATH: src.text}, old, new, _intended(src, b))


def k_bom(rng, src):
    size = next(
        n
        for n in range(rng.randint(2, 6), 40)
        if src.lines[n - 1].strip() and src.text.count(_join(src.lines[:n])) == 1
    )
    b = Block(0, src.lines[:size], [])
    b.new = _change(rng, b.old)
    old = "\ufeff" + _join(b.old)
    new = ("\ufeff" if rng.random() < 0.5 else "") + _join(b.new)
    want = "\ufeff" + _intended(src, b)
    return _edit_case("BOM copied into old", src, {PATH: "\ufeff" + src.text}, old, new, want)


def k_trailing_space_in_file(rng, src):
    b = _pick_block(rng, src, lambda lines: len(set(lines)) == len(lines))
    spaced = [x + "  " if k % 2 == 0 and x.strip() else x for k, x in enumerate(b.old)]
    file_src = Source(src.name, src.lines[: b.start] + spaced + src.lines[b.start + len(b.old) :])
    want_block = Block(b.start, spaced, [_keep_space(line, b.old, spaced) for line in b.new])
    case = _edit_case(
        "trailing space in file", src, {PATH: file_src.text}, _join(b.old), _join(b.new), ""
    )
    case.expected = {PATH: _intended(file_src, want_block).encode()}
    return case


def _keep_space(line: str, old: list[str], spaced: list[str]) -> str:
    return spaced[old.index(line)] if line in old else line


def k_indent_shift(rng, src):
    b = _pick_block(rng, src, lambda lines: all(x.startswith("    ") for x in lines if x.strip()))
    old, new = _join([x[4:] for x in b.old]), _join([x[4:] for x in b.new])
    return _edit_case("indentation shifted", src, {PATH: src.text}, old, new, _intended(src, b))


def k_mixed(rng, src):
    """Gutter, curly quotes, lost indentation and a trailing newline, all at once."""
    b = _pick_block(rng, src, lambda lines: all(x.startswith("    ") for x in lines if x.strip()))
    old = _curl(_join([x[4:] for x in b.old])) + "\n"
    new = _curl(_join([x[4:] for x in b.new]))
    old, new = _gutter(old.split("\n")[:-1], b.start + 1, "{n:>6}| {line}") + "\n", new
    return _edit_case("mixed drift", src, {PATH: src.text}, old, new, _intended(src, b))


def _diff(src: Source, b: Block) -> list[str]:
    before = src.text.splitlines(keepends=True)
    after = _intended(src, b).splitlines(keepends=True)
    return list(difflib.unified_diff(before, after, f"a/{PATH}", f"b/{PATH}", n=3))


def _diff_case(kind: str, src: Source, lines: list[str], b: Block, file_text: str | None = None):
    return Case(
        kind,
        {PATH: (file_text or src.text).encode()},
        diff="".join(lines),
        expected={PATH: _intended(src, b).encode()},
        source=src.name,
    )


_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _header(line: str, f: Callable[[int, int, int, int], tuple[int, int, int, int]]) -> str:
    m = _HUNK.match(line)
    a, b_, c, d = (int(g) if g is not None else 1 for g in m.groups())
    a, b_, c, d = f(a, b_, c, d)
    return f"@@ -{a},{b_} +{c},{d} @@\n"


def k_diff_exact(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    return _diff_case("diff, exact", src, _diff(src, b), b)


def k_diff_far(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    shift = rng.randint(11, 40) * (1 if b.start < 40 or rng.random() < 0.5 else -1)
    lines = [
        _header(x, lambda a, n, c, m: (a + shift, n, c + shift, m)) if x.startswith("@@") else x
        for x in _diff(src, b)
    ]
    return _diff_case("diff, hunk 11-40 lines off", src, lines, b)


def k_diff_context_whitespace(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    lines = []
    for x in _diff(src, b):
        if x.startswith(" ") and x.strip():
            x = x[:-1] + "  \n" if rng.random() < 0.5 else x
        elif x == " \n":
            x = "\n"
        lines.append(x)
    if lines == _diff(src, b):
        lines = [x[:-1] + " \n" if x.startswith(" ") else x for x in lines]
    return _diff_case("diff, whitespace in context", src, lines, b)


def k_diff_counts_off(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    side = rng.randrange(4)

    def off(*nums):
        nums = list(nums)
        if side in (1, 3):
            nums[side] += rng.choice((-1, 1))
        else:
            nums[side + 1] += rng.choice((-1, 1))
        return tuple(nums)

    lines = [_header(x, off) if x.startswith("@@") else x for x in _diff(src, b)]
    return _diff_case("diff, counts off by one", src, lines, b)


def k_diff_far_and_whitespace(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    shift = rng.randint(11, 40)
    lines = []
    for x in _diff(src, b):
        if x.startswith("@@"):
            x = _header(x, lambda a, n, c, m: (a + shift, n, c + shift, m))
        elif x.startswith(" ") and x.strip():
            x = x[:-1] + " \n"
        lines.append(x)
    return _diff_case("diff, far off and whitespace", src, lines, b)


def k_diff_undercount_new(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    lines = [
        _header(x, lambda a, n, c, m: (a, n, c, m - 1)) if x.startswith("@@") else x
        for x in _diff(src, b)
    ]
    return _diff_case("diff, new count short", src, lines, b)


def _refusal(kind: str, src: Source, files: dict[str, str], **proposal) -> Case:
    return Case(kind, {p: t.encode() for p, t in files.items()}, source=src.name, **proposal)


def k_ambiguous(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    copy = [line + "  " for line in b.old]
    text = src.text + "\n" + _join(copy) + "\n"
    edit = FileEdit(path=PATH, old_string=_join([x + "\t" for x in b.old]), new_string=_join(b.new))
    return _refusal("refuse: ambiguous after normalising", src, {PATH: text}, edits=[edit])


def k_invented_old(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    old = list(b.old)
    old[rng.randrange(len(old))] = _indent(old[0]) + "frobnicate(widget)"
    edit = FileEdit(path=PATH, old_string=_join(old), new_string=_join(b.new))
    return _refusal("refuse: invented old_string line", src, {PATH: src.text}, edits=[edit])


def k_invented_context(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    lines = _diff(src, b)
    context = [k for k, x in enumerate(lines) if x.startswith(" ") and x.strip()]
    k = rng.choice(context)
    lines[k] = " " + _indent(lines[k][1:]) + "frobnicate(widget)\n"
    return _refusal(
        "refuse: diff with invented context", src, {PATH: src.text}, diff="".join(lines)
    )


def k_empty_old(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    edit = FileEdit(path=PATH, old_string="", new_string=_join(b.new))
    return _refusal("refuse: empty old_string", src, {PATH: src.text}, edits=[edit])


def k_missing_file(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    edit = FileEdit(path="missing.py", old_string=_join(b.old), new_string=_join(b.new))
    return _refusal("refuse: missing file", src, {PATH: src.text}, edits=[edit])


def k_diff_ambiguous(rng, src):
    b = _pick_block(rng, src, lambda _: True)
    lines = _diff(src, b)
    hunk = [x[1:] for x in lines[3:] if x[0] in " -"]
    text = src.text + "\n".join(["# pad"] * 30) + "\n" + "".join(hunk)
    lines = [
        _header(x, lambda a, n, c, m: (a + 25, n, c + 25, m)) if x.startswith("@@") else x
        for x in lines
    ]
    return _refusal("refuse: diff hunk fits twice", src, {PATH: text}, diff="".join(lines))


APPLY_KINDS = (
    k_exact,
    k_old_trailing_newline,
    k_new_trailing_newline,
    k_curly_quotes,
    k_gutter_pipe,
    k_gutter_tab,
    k_gutter_old_only,
    k_sequential,
    k_tabs,
    k_partial_first_line,
    k_bom,
    k_trailing_space_in_file,
    k_indent_shift,
    k_mixed,
    k_diff_exact,
    k_diff_far,
    k_diff_context_whitespace,
    k_diff_counts_off,
    k_diff_undercount_new,
    k_diff_far_and_whitespace,
)
REFUSAL_KINDS = (
    k_ambiguous,
    k_invented_old,
    k_invented_context,
    k_empty_old,
    k_missing_file,
    k_diff_ambiguous,
)


def cases(per_kind: int, seed: int = 13) -> list[Case]:
    """per_kind cases of every kind, the same ones for the same seed."""
    rng = random.Random(seed)
    sources = load_sources()
    out = []
    for kind in APPLY_KINDS + REFUSAL_KINDS:
        for k in range(per_kind):
            out.append(kind(rng, sources[k % len(sources)]))
    return out


def score(case: Case) -> str:
    """'applied' (the intended bytes), 'refused' (an error) or 'wrong' (anything else written)."""

    def read(path: str):
        return decode_file(path, case.files.get(path))

    try:
        if case.edits is not None:
            change = plan_edits(case.edits, read)
        else:
            change = plan_diff(case.diff or "", read)
    except BridgeError:
        return "refused"
    if case.expected is None:
        return "wrong"
    written = {path: change.new_bytes(path) for path in change.after}
    return "applied" if written == case.expected else "wrong"
