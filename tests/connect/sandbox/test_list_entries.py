"""ListFiles' pattern is Opik's fnmatch on the name or the relative path, run by RE2."""

from __future__ import annotations

import fnmatch

import pytest

from opik_connect.connect.sandbox.list_entries import compile_fnmatch, list_entries
from opik_connect.protocol import BridgeError, ErrorCode

PATTERNS = [
    "*.py", "src/*.py", "**/*.py", "a?c", "[ab]*", "[!a]*", "x[", "[]]x", "*[.]py", "a-b*",
    "[a-c]x", "*é*", "a b", "**", "[!]]q", "[^a]", "\\*", "*b", "b*.py", "*.P", "(a|b)", "a+",
]  # fmt: skip
PATHS = [
    "a.py", "src/a.py", "src/x/a.py", "abc", "b.txt", "bx", "x[", "]x", "a-b", "cx", "é",
    "a b", "q", "^", "[^a]", "\\x", "*", "!", "a/b/c.py", "x/ab", "A.P", "(a|b)", "aa",
]  # fmt: skip


@pytest.mark.parametrize("pattern", PATTERNS)
def test_pattern_matches_as_pythons_fnmatch_on_name_or_path(pattern: str) -> None:
    match = compile_fnmatch(pattern)
    for rel in PATHS:
        name = rel.rsplit("/", 1)[-1]
        expected = fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(rel, pattern)
        assert match(name, rel) is expected, (pattern, rel)


def test_a_pattern_with_a_nul_or_too_long_is_invalid_args() -> None:
    for pattern in ("a\0b", "*" * 1001):
        with pytest.raises(BridgeError) as info:
            compile_fnmatch(pattern)
        assert info.value.code == ErrorCode.INVALID_ARGS


def test_entries_at_each_depth_with_noise_and_pattern() -> None:
    files = sorted(["a/b/c/d.py", "a/b/e.txt", "a/dist/x.py", "a/f.py", "g.py", "h.md"])
    assert list_entries(files, "", 1, None).files == ["a/", "g.py", "h.md"]
    assert list_entries(files, "a", 5, compile_fnmatch("*.py")).files == [
        "b/",
        "b/c/",
        "b/c/d.py",
        "f.py",
    ]
    capped = list_entries([f"f{i:04}" for i in range(1200)], "", 1, None)
    assert (len(capped.files), capped.total, capped.truncated) == (1000, 1200, True)
