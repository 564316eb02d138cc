"""The edit engine's contract, stated on generated files and edits (hypothesis).

An applied edit changes only the region it matched and writes exactly the intended text; the
same drift in old and new text cancels out (curly quotes: once old shows the model curls them);
a match that is not unique is refused; a diff is applied by its lines or refused, whatever its
header counts say, never truncated.
"""

from __future__ import annotations

import difflib
import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from opik_connect.connect.proposals.edit_engine import decode_file, plan_diff, plan_edits
from opik_connect.protocol import BridgeError, ErrorCode, FileEdit

PATH = "f.txt"
WORD = st.text(alphabet="abcxyz_", min_size=1, max_size=5)
QUOTE = st.sampled_from(["", "'", '"'])
CURLY = {"'": ("\u2018", "\u2019"), '"': ("\u201c", "\u201d")}
PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def line(name: str, level: int, word: str, quote: str) -> str:
    return "    " * level + f"{name} = {quote}{word}{quote}"


@st.composite
def scenario(draw):
    """A file of unique lines, a block of it, and the intended new block."""
    n = draw(st.integers(2, 20))
    lines = [line(f"v{i}", draw(st.integers(0, 3)), draw(WORD), draw(QUOTE)) for i in range(n)]
    start = draw(st.integers(0, n - 1))
    end = draw(st.integers(start + 1, min(n, start + 5)))
    block = lines[start:end]
    new = list(block)
    for k in draw(st.lists(st.integers(0, len(block) - 1), max_size=3, unique=True)):
        new[k] = new[k] + f"  # {draw(WORD)}"
    base = min(len(x) - len(x.lstrip()) for x in block) // 4
    for k, at in enumerate(draw(st.lists(st.integers(0, len(new)), max_size=2))):
        level = base + draw(st.integers(0, 1))
        new.insert(at, line(f"n{k}", level, draw(WORD), draw(QUOTE)))
    if draw(st.booleans()) and len(new) > 1:
        new.pop(draw(st.integers(0, len(new) - 1)))
    if new == block:
        new.append(line("n9", base, "z", "'"))
    return lines, start, end, new


def text_of(lines: list[str]) -> str:
    return "".join(x + "\n" for x in lines)


def apply(text: str, *edits: tuple[str, str]) -> str:
    change = plan_edits(
        [FileEdit(path=PATH, old_string=o, new_string=n) for o, n in edits],
        lambda p: decode_file(p, text.encode() if p == PATH else None),
    )
    return change.after[PATH] or ""


def curl(text: str) -> str:
    out = []
    for k, ch in enumerate(text):
        opening = k == 0 or text[k - 1] in " =\n"
        out.append(CURLY[ch][0 if opening else 1] if ch in CURLY else ch)
    return "".join(out)


def dedent(block: str, by: int) -> str:
    return "\n".join(x[by:] for x in block.split("\n"))


def gutter(block: str, first: int) -> str:
    return "\n".join(f"{first + k:>5}| {x}" for k, x in enumerate(block.split("\n")))


def tabs(text: str) -> str:
    return re.sub(r"(?m)^((?:    )+)", lambda m: "\t" * (len(m.group(1)) // 4), text)


@PROFILE
@given(scenario())
def test_an_edit_writes_exactly_the_intended_text(case) -> None:
    lines, start, end, new = case
    after = apply(text_of(lines), ("\n".join(lines[start:end]), "\n".join(new)))
    assert after == text_of(lines[:start] + new + lines[end:])


@PROFILE
@given(scenario(), st.sampled_from(["old newline", "new newline", "curly", "gutter", "dedent"]))
def test_the_same_drift_in_old_and_new_cancels_out(case, drift) -> None:
    lines, start, end, new = case
    old_text, new_text = "\n".join(lines[start:end]), "\n".join(new)
    if drift == "old newline":
        old_text += "\n"
    elif drift == "new newline":
        new_text += "\n"
    elif drift == "curly":
        assume(curl(old_text) != old_text)
        old_text, new_text = curl(old_text), curl(new_text)
    elif drift == "gutter":
        old_text, new_text = gutter(old_text, start + 1), gutter(new_text, start + 1)
    else:
        by = min(len(x) - len(x.lstrip()) for x in lines[start:end] + new)
        old_text, new_text = dedent(old_text, by), dedent(new_text, by)
    assert apply(text_of(lines), (old_text, new_text)) == text_of(lines[:start] + new + lines[end:])


@PROFILE
@given(scenario())
def test_spaces_in_old_and_new_are_tabs_in_a_tab_indented_file(case) -> None:
    lines, start, end, new = case
    assume(any(x.startswith(" ") for x in lines))
    after = apply(tabs(text_of(lines)), ("\n".join(lines[start:end]), "\n".join(new)))
    assert after == tabs(text_of(lines[:start] + new + lines[end:]))


@PROFILE
@given(scenario(), st.booleans())
def test_a_match_that_is_not_unique_is_refused(case, drifted) -> None:
    lines, start, end, new = case
    block = lines[start:end]
    copy = [x + "  " for x in block] if drifted else block
    text = text_of(lines + copy)
    old = "\n".join(x + "\t" for x in block) if drifted else "\n".join(block)
    with pytest.raises(BridgeError) as caught:
        apply(text, (old, "\n".join(new)))
    assert caught.value.code == ErrorCode.MATCH_AMBIGUOUS


def diff_lines(before: list[str], after: list[str]) -> list[str]:
    return list(
        difflib.unified_diff(
            [x + "\n" for x in before], [x + "\n" for x in after], f"a/{PATH}", f"b/{PATH}", n=2
        )
    )


@PROFILE
@given(scenario(), st.lists(st.integers(-3, 3), min_size=4, max_size=4))
def test_a_diff_is_applied_by_its_lines_or_refused(case, skew) -> None:
    lines, start, end, new = case
    intended = lines[:start] + new + lines[end:]
    body = []
    for x in diff_lines(lines, intended):
        found = re.match(r"@@ -(\d+),?(\d*) \+(\d+),?(\d*) @@", x)
        if found:
            nums = [int(g or 1) + d for g, d in zip(found.groups(), skew, strict=True)]
            x = "@@ -{},{} +{},{} @@\n".format(*(max(0, v) for v in nums))
        body.append(x)
    text = text_of(lines)
    try:
        change = plan_diff("".join(body), lambda p: decode_file(p, text.encode()))
    except BridgeError as exc:
        assert exc.code == ErrorCode.PATCH_FAILED
        return
    assert change.after[PATH] == text_of(intended)


@PROFILE
@given(scenario(), st.data())
def test_an_exact_unique_substring_is_replaced_and_nothing_else(case, data) -> None:
    lines, _, _, _ = case
    text = text_of(lines)
    k = data.draw(st.integers(0, len(lines) - 1))
    at = len(text_of(lines[:k]))
    indent = len(lines[k]) - len(lines[k].lstrip())
    named = indent + len(f"v{k} =")
    i = at + data.draw(st.integers(0, indent))
    j = at + data.draw(st.integers(named, len(lines[k])))
    old = text[i:j]
    assume(len(re.findall(f"(?={re.escape(old)})", text)) == 1)
    new = data.draw(st.text(alphabet="abc =_'", min_size=1, max_size=8))
    assume(new != old)
    assert apply(text, (old, new)) == text[:i] + new + text[j:]
