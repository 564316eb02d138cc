"""The fast sensitive-name check gives the same verdicts as the one combined regex it replaced."""

from __future__ import annotations

import re
import sysconfig
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from opik_connect.connect.sandbox import policy as policy_module
from opik_connect.connect.sandbox.policy import (
    SENSITIVE_NAME_GLOBS,
    SENSITIVE_PAIR_GLOBS,
    PathPolicy,
    glob_to_regex,
)

DENY = ("build/", "*.log", "docs/private/**", "Cache*")


def _regex(globs: tuple[str, ...], flags: int = 0) -> re.Pattern[str]:
    return re.compile(rf"(?:{'|'.join(glob_to_regex(g) for g in globs)})\Z", flags)


OLD_NAME = _regex(SENSITIVE_NAME_GLOBS, re.IGNORECASE | re.DOTALL)
OLD_PAIR = _regex(SENSITIVE_PAIR_GLOBS, re.IGNORECASE | re.DOTALL)
OLD_DENY_NAMED = _regex(tuple(g.rstrip("/") for g in DENY if "/" not in g.rstrip("/")))
OLD_DENY_ANCHORED = _regex(tuple(g.strip("/") for g in DENY if "/" in g.rstrip("/")))


def old_is_sensitive(rel: str) -> bool:
    """The verdict as the regex-only version gave it: any prefix of the path whose last name,
    last pair of names or whole path (anchored deny globs) matches."""
    names = rel.split("/")
    for i, name in enumerate(names):
        if OLD_NAME.match(name) or OLD_DENY_NAMED.match(name):
            return True
        if i and OLD_PAIR.match(f"{names[i - 1]}/{name}"):
            return True
        if OLD_DENY_ANCHORED.match("/".join(names[: i + 1])):
            return True
    return False


# Pieces of the globs (in both cases) and characters that case-fold oddly under re.IGNORECASE.
# Each piece also without its first character, so an odd character can stand in for it.
WHOLE = {p for g in (*SENSITIVE_NAME_GLOBS, *SENSITIVE_PAIR_GLOBS) for p in re.split(r"[*/]", g)}
PIECES = sorted({q for p in WHOLE if p for q in (p, p[1:]) if q})
ODD = ["K", "ſ", "İ", "ı", "ß", "Ω", "é", "\n", ".", "_", "x", "."]
name_part = st.one_of(
    st.sampled_from(PIECES),
    st.sampled_from(PIECES).map(str.upper),
    st.sampled_from(PIECES).map(str.title),
    st.sampled_from(ODD),
    st.text(min_size=1, max_size=3).filter(lambda t: "/" not in t),
)
name = st.lists(name_part, min_size=1, max_size=4).map("".join)


@settings(max_examples=3000, deadline=None)
@given(st.lists(name, min_size=1, max_size=4).map("/".join))
@example("src/ſecret.py")
@example("a/KUBECONFIG")
@example("x/.AWS/Config")
@example("x/.Kube/config")
@example("x/.kube/config.bak")
def test_same_verdict_as_the_regex_on_generated_paths(tmp_path_factory, rel: str) -> None:
    policy = PathPolicy(tmp_path_factory.getbasetemp(), deny=DENY)
    assert policy.is_sensitive(rel) == old_is_sensitive(rel), rel


def test_same_verdict_as_the_regex_on_the_standard_library() -> None:
    root = Path(sysconfig.get_paths()["stdlib"])
    paths = [str(p.relative_to(root)) for p in root.rglob("*")]
    policy = PathPolicy(root, deny=DENY)
    assert len(paths) > 1000
    assert [policy.is_sensitive(p) for p in paths] == [old_is_sensitive(p) for p in paths]


def test_verdicts_hold_past_a_full_file_memo_which_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Files are remembered up to FILE_MEMO_SIZE (directories apart): a large repo's files
    are checked again rather than kept in a table of every path."""
    monkeypatch.setattr(policy_module, "FILE_MEMO_SIZE", 64)
    root = Path(sysconfig.get_paths()["stdlib"])
    paths = [str(p.relative_to(root)) for p in root.rglob("*.py")]
    policy = PathPolicy(root, deny=DENY)
    first = [policy.is_sensitive(p) for p in paths]
    assert len(policy._file_memo) <= 64
    assert [policy.is_sensitive(p) for p in reversed(paths)] == first[::-1]
    assert first == [old_is_sensitive(p) for p in paths]
