"""The listing's visible paths: a sorted list answers what the set it replaced answered."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from opik_connect.connect.sandbox.listing import VisiblePaths

NAMES = st.sampled_from(["a", "a-b", "a.b", "a0", "b", "ä", "a b", "z"])
PATHS = st.lists(NAMES, min_size=1, max_size=4).map("/".join)


@given(st.sets(PATHS, max_size=30), st.lists(PATHS, max_size=10), PATHS)
def test_lookups_and_ranges_match_a_set(paths: set[str], probes: list[str], rel: str) -> None:
    visible = VisiblePaths(paths)
    for probe in [*probes, *paths, rel, ""]:
        assert (probe in visible) == (probe in paths)
    assert 3 not in visible
    expected = {p for p in paths if p == rel or p.startswith(rel + "/")}
    assert sorted(visible.under(rel)) == sorted(expected)
    assert sorted(visible.under("")) == sorted(paths)


@given(st.sets(PATHS, max_size=30), st.lists(PATHS, max_size=10))
def test_added_paths_are_found_and_the_original_is_unchanged(
    paths: set[str], extra: list[str]
) -> None:
    visible = VisiblePaths(paths)
    merged = visible.with_paths(extra)
    assert sorted(merged.under("")) == sorted(paths | set(extra))
    assert all(p in merged for p in extra)
    assert sorted(visible.under("")) == sorted(paths)
