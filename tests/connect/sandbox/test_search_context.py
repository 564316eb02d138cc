"""SearchFiles' context lines follow Opik's `git grep -C3` parsing: lines between two close
matches go to both, neighbouring matches share nothing, far ones get 3 lines each."""

from __future__ import annotations

from opik_connect.connect.sandbox.search_context import (
    MAX_SEARCH_BYTES,
    SEARCH_LINE_CHARS,
    set_contexts,
    within_bytes,
)
from opik_connect.protocol import SearchMatch

HITS = (1, 2, 8, 17, 26, 27, 30)


def contexts(hits: tuple[int, ...], returned: int) -> list[tuple[list[str], list[str]]]:
    text = "".join(f"HIT {i}\n" if i in hits else f"line {i}\n" for i in range(1, 40))
    data = text.encode()
    starts = [0]
    for i, ch in enumerate(data):
        if ch == 10:
            starts.append(i + 1)
    spans = [(starts[h - 1], starts[h] - 1) for h in hits]
    matches = [SearchMatch(file="a", line=h, content="") for h in hits[:returned]]
    set_contexts(data, matches, spans[: returned + 1])
    return [(m.context_before, m.context_after) for m in matches]


def test_close_matches_share_the_lines_between_and_far_ones_get_three() -> None:
    got = contexts(HITS, len(HITS))
    between_2_and_8 = [f"line {i}" for i in range(3, 8)]
    assert got[0] == ([], [])
    assert got[1] == ([], between_2_and_8)
    assert got[2] == (between_2_and_8, ["line 9", "line 10", "line 11"])
    assert got[3] == (["line 14", "line 15", "line 16"], ["line 18", "line 19", "line 20"])
    assert got[4] == (["line 23", "line 24", "line 25"], [])
    assert got[5] == ([], ["line 28", "line 29"])
    assert got[6] == (["line 28", "line 29"], ["line 31", "line 32", "line 33"])


def test_the_first_unreturned_match_still_bounds_the_last_context() -> None:
    assert contexts(HITS, 2)[1] == ([], [f"line {i}" for i in range(3, 8)])


def test_context_lines_are_cut_like_opiks() -> None:
    data = ("x" * 900 + "\nHIT\n").encode()
    (match,) = [SearchMatch(file="a", line=2, content="HIT")]
    set_contexts(data, [match], [(901, 904)])
    assert match.context_before == ["x" * SEARCH_LINE_CHARS]


def test_matches_past_opiks_byte_cap_are_left_out() -> None:
    line = "é" * SEARCH_LINE_CHARS
    matches = [
        SearchMatch(file="a", line=i, content=line, context_before=[line] * 6) for i in range(100)
    ]
    kept = within_bytes(matches)
    assert 0 < len(kept) < 100
    assert sum(len(m.model_dump_json().encode()) for m in kept) <= MAX_SEARCH_BYTES
    assert within_bytes(matches[:3]) == matches[:3]
