"""The listing's visible paths, packed in one block, answer what a sorted list of str and a set
answered: lookups, indexing, ranges, iteration, and the sets made from them by a change."""

from __future__ import annotations

import bisect

from hypothesis import given
from hypothesis import strategies as st

from opik_connect.connect.sandbox.list_entries import list_entries
from opik_connect.connect.sandbox.packed_paths import PackedPaths

NAMES = st.sampled_from(["a", "a-b", "a.b", "a0", "b", "ä", "a b", "z", "日本", "😀", "A"])
PATHS = st.lists(NAMES, min_size=1, max_size=4).map("/".join)


@given(st.sets(PATHS, max_size=30), st.lists(PATHS, max_size=10), PATHS)
def test_lookups_and_ranges_match_a_set(paths: set[str], probes: list[str], rel: str) -> None:
    visible = PackedPaths(paths)
    for probe in [*probes, *paths, rel, ""]:
        assert (probe in visible) == (probe in paths)
    assert 3 not in visible and "\udcff" not in visible and visible.under("\udcff") == []
    expected = {p for p in paths if p == rel or p.startswith(rel + "/")}
    assert sorted(visible.under(rel)) == sorted(expected)
    assert sorted(visible.under("")) == sorted(paths)


@given(st.lists(PATHS, max_size=30), st.lists(PATHS, max_size=10))
def test_it_reads_as_the_sorted_list_of_str_it_replaced(
    paths: list[str], probes: list[str]
) -> None:
    """Same length, items, order and bisection as sorted(set(paths)), so the listing code that
    walked that list (bisect, indexing) gives the same answers."""
    expected = sorted(set(paths))
    visible = PackedPaths(paths)
    assert len(visible) == len(expected)
    assert [visible[i] for i in range(len(visible))] == expected
    assert list(visible) == visible.as_list() == expected == visible[:]
    if expected:
        assert visible[-1] == expected[-1]
    for probe in probes:
        assert bisect.bisect_left(visible, probe) == bisect.bisect_left(expected, probe)
    for rel in ["", *{p.rsplit("/", 1)[0] for p in expected if "/" in p}]:
        for depth in (1, 3):
            assert list_entries(visible, rel, depth, None) == list_entries(
                expected, rel, depth, None
            )


@given(st.sets(PATHS, max_size=30), st.lists(PATHS, max_size=10), st.lists(PATHS, max_size=10))
def test_a_change_makes_a_new_set_and_leaves_the_old_one(
    paths: set[str], add: list[str], remove: list[str]
) -> None:
    visible = PackedPaths(paths)
    changed = visible.changed(add=add, remove=remove)
    assert list(changed) == sorted((paths | set(add)) - set(remove))
    assert list(visible) == sorted(paths)
    merged = visible.with_paths(add)
    assert list(merged) == sorted(paths | set(add))
    assert all(p in merged for p in add)


def test_a_name_that_is_not_utf8_is_left_out_as_git_leaves_it() -> None:
    visible = PackedPaths(["ok.py", "bad\udcff.py"]).changed(add=["new\udcfe.py", "new.py"])
    assert list(visible) == ["new.py", "ok.py"]
    assert list(visible.changed(remove=["bad\udcff.py", "ok.py"])) == ["new.py"]


def test_an_empty_set_answers_empty() -> None:
    empty = PackedPaths()
    assert len(empty) == 0 and list(empty) == [] and "" not in empty and empty.under("a") == []
    assert list(empty.with_paths(["a"])) == ["a"]


@given(st.lists(PATHS, max_size=30))
def test_git_output_packs_as_its_paths_do(paths: list[str]) -> None:
    output = b"".join(p.encode() + b"\0" for p in paths)
    assert list(PackedPaths.from_joined(output)) == list(PackedPaths(paths)) == sorted(set(paths))
    assert list(PackedPaths.from_joined(output + b"bad\xff.py\0z\0")) == sorted({*paths, "z"})
