"""The edit engine: every error code, every fuzzy rule, line endings, BOM, new and deleted files."""

from __future__ import annotations

from pathlib import Path

import pytest
from unidiff import PatchSet

from opik_connect.connect.proposals.edit_engine import FileText, decode_file, plan_diff, plan_edits
from opik_connect.protocol import BridgeError, ErrorCode, FileEdit

PY = "def f(x):\n    if x:\n        return 'a'\n    return 'b'\n"


def reader(files: dict[str, bytes]):
    def read(path: str) -> FileText:
        return decode_file(path, files.get(path))

    return read


def edit(path: str, old: str, new: str, delete: bool = False) -> FileEdit:
    return FileEdit(path=path, old_string=old, new_string=new, delete=delete)


OK_CASES = [
    # (name, files, edits, expected bytes per path, None = deleted)
    (
        "exact",
        {"a.py": PY.encode()},
        [edit("a.py", "return 'b'", "return 'c'")],
        {"a.py": PY.replace("return 'b'", "return 'c'").encode()},
    ),
    (
        "unicode quotes in old_string",
        {"a.txt": b"say 'hi' now\n"},
        [edit("a.txt", "say \u2018hi\u2019 now", "say 'bye' now")],
        {"a.txt": b"say 'bye' now\n"},
    ),
    (
        "unicode dash and nbsp in file",
        {"a.txt": "x \u2014 y\u00a0z\n".encode()},
        [edit("a.txt", "x - y z", "x - y - z")],
        {"a.txt": "x \u2014 y\u00a0- z\n".encode()},
    ),
    (
        "unicode quotes mid-line",
        {"a.txt": "x = \u201cdone\u201d  # note\n".encode()},
        [edit("a.txt", 'x = "done"', 'x = "finished"')],
        {"a.txt": "x = \u201cfinished\u201d  # note\n".encode()},
    ),
    (
        "trailing whitespace in file",
        {"a.txt": b"one   \ntwo\t\nthree\n"},
        [edit("a.txt", "one\ntwo\n", "ONE\nTWO\n")],
        {"a.txt": b"ONE\nTWO\nthree\n"},
    ),
    (
        "indentation shift deeper",
        {"a.py": PY.encode()},
        [edit("a.py", "if x:\n    return 'a'", "if not x:\n    return 'z'")],
        {"a.py": PY.replace("if x:\n        return 'a'", "if not x:\n        return 'z'").encode()},
    ),
    (
        "indentation shift shallower",
        {"a.py": b"if True:\n  y = 1\n"},
        [edit("a.py", "        y = 1\n", "        y = 2\n")],
        {"a.py": b"if True:\n  y = 2\n"},
    ),
    (
        "crlf kept",
        {"w.txt": b"alpha\r\nbeta\r\ngamma\r\n"},
        [edit("w.txt", "beta\n", "BETA\n")],
        {"w.txt": b"alpha\r\nBETA\r\ngamma\r\n"},
    ),
    (
        "bom kept",
        {"b.py": b"\xef\xbb\xbfx = 1\n"},
        [edit("b.py", "x = 1", "x = 2")],
        {"b.py": b"\xef\xbb\xbfx = 2\n"},
    ),
    (
        "unicode content",
        {"u.txt": "caf\u00e9 \u2603 \U0001f600\n".encode()},
        [edit("u.txt", "\u2603", "\u2744")],
        {"u.txt": "caf\u00e9 \u2744 \U0001f600\n".encode()},
    ),
    ("new file", {}, [edit("new/mod.py", "", "VALUE = 1\n")], {"new/mod.py": b"VALUE = 1\n"}),
    (
        "deletion by flag",
        {"gone.txt": b"bye\n"},
        [edit("gone.txt", "", "", delete=True)],
        {"gone.txt": None},
    ),
    (
        "two edits one file",
        {"a.py": PY.encode()},
        [edit("a.py", "return 'a'", "return 'A'"), edit("a.py", "return 'b'", "return 'B'")],
        {"a.py": PY.replace("'a'", "'A'").replace("'b'", "'B'").encode()},
    ),
    (
        "already broken python stays allowed",
        {"bad.py": b"def (:\nx = 1\n"},
        [edit("bad.py", "x = 1", "x = 2")],
        {"bad.py": b"def (:\nx = 2\n"},
    ),
    ("no newline at end", {"n.txt": b"a\nb"}, [edit("n.txt", "b", "c")], {"n.txt": b"a\nc"}),
]


@pytest.mark.parametrize(
    ("name", "files", "edits", "expected"), OK_CASES, ids=[c[0] for c in OK_CASES]
)
def test_edits_plan(name, files, edits, expected) -> None:
    change = plan_edits(edits, reader(files))
    assert set(change.after) == set(expected)
    for path, content in expected.items():
        assert change.new_bytes(path) == content
    parsed = PatchSet(change.diff)
    assert {p.path for p in parsed} == set(expected)
    for stat, patched in zip(change.files, parsed, strict=True):
        assert (stat.added, stat.removed) == (patched.added, patched.removed)


ERROR_CASES = [
    (
        "ambiguous exact",
        {"a.txt": b"x = 1\ny\nx = 1\n"},
        [edit("a.txt", "x = 1", "x = 2")],
        ErrorCode.MATCH_AMBIGUOUS,
        {"lines": [1, 3]},
    ),
    (
        "ambiguous overlapping",
        {"a.txt": b"aaa\n"},
        [edit("a.txt", "aa", "b")],
        ErrorCode.MATCH_AMBIGUOUS,
        {"lines": [1, 1]},
    ),
    (
        "ambiguous fuzzy",
        {"a.txt": b"  k\nz\n    k\n"},
        [edit("a.txt", "k \n", "q\n")],
        ErrorCode.MATCH_AMBIGUOUS,
        {"lines": [1, 3]},
    ),
    (
        "not found quotes closest",
        {"a.py": PY.encode()},
        [edit("a.py", "return 'bee'\nfoo", "x")],
        ErrorCode.MATCH_NOT_FOUND,
        {"closest_line": 4},
    ),
    (
        "a later edit written against the original",
        {"a.txt": b"abcdef\n"},
        [edit("a.txt", "abcd", "X"), edit("a.txt", "cdef", "Y")],
        ErrorCode.MATCH_NOT_FOUND,
        {"edit": 1},
    ),
    ("same string", {"a.txt": b"abc\n"}, [edit("a.txt", "abc", "abc")], ErrorCode.NO_CHANGE, {}),
    (
        "fuzzy match to identical text",
        {"a.txt": b"abc  \n"},
        [edit("a.txt", "abc\n", "abc  \n")],
        ErrorCode.NO_CHANGE,
        {},
    ),
    (
        "new syntax error",
        {"a.py": PY.encode()},
        [edit("a.py", "return 'b'", "return (")],
        ErrorCode.SYNTAX_ERROR,
        {"line": 4},
    ),
    (
        "new file already exists",
        {"a.txt": b"x\n"},
        [edit("a.txt", "", "y\n")],
        ErrorCode.INVALID_ARGS,
        {},
    ),
    ("missing file", {}, [edit("nope.txt", "a", "b")], ErrorCode.FILE_NOT_FOUND, {}),
    ("delete missing", {}, [edit("nope.txt", "", "", delete=True)], ErrorCode.FILE_NOT_FOUND, {}),
    (
        "delete with content",
        {"a.txt": b"x\n"},
        [edit("a.txt", "", "y", delete=True)],
        ErrorCode.INVALID_ARGS,
        {},
    ),
    (
        "delete and edit",
        {"a.txt": b"x\n"},
        [edit("a.txt", "", "", delete=True), edit("a.txt", "x", "y")],
        ErrorCode.EDITS_OVERLAP,
        {},
    ),
    ("binary", {"b.bin": b"\x00\x01"}, [edit("b.bin", "a", "b")], ErrorCode.BINARY_FILE, {}),
    ("not utf8", {"l.txt": b"caf\xe9\n"}, [edit("l.txt", "a", "b")], ErrorCode.BINARY_FILE, {}),
]


@pytest.mark.parametrize(
    ("name", "files", "edits", "code", "details"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
def test_edit_errors(name, files, edits, code, details) -> None:
    with pytest.raises(BridgeError) as caught:
        plan_edits(edits, reader(files))
    assert caught.value.code == code, caught.value.message
    for key, value in details.items():
        assert caught.value.details[key] == value


def test_not_found_quotes_region_once() -> None:
    with pytest.raises(BridgeError) as caught:
        plan_edits([edit("a.py", "return 'bee'", "x")], reader({"a.py": PY.encode()}))
    assert caught.value.details["closest"] == "    4|     return 'b'"
    assert "return 'b'" not in caught.value.message, "the region is quoted in details only"
    assert "line 4" in caught.value.message and "column 14" in caught.value.message


DIFF_MOD = """--- a/a.py
+++ b/a.py
@@ -2,3 +2,3 @@
     if x:
-        return 'a'
+        return 'A'
     return 'b'
"""


def shifted(text: str, by: int) -> bytes:
    return ("# pad\n" * by + text).encode()


DIFF_OK = [
    ("modify", {"a.py": PY.encode()}, DIFF_MOD, {"a.py": PY.replace("'a'", "'A'").encode()}),
    (
        "offset within tolerance",
        {"a.py": shifted(PY, 3)},
        DIFF_MOD,
        {"a.py": shifted(PY.replace("'a'", "'A'"), 3)},
    ),
    (
        "offset far beyond the header, text unique",
        {"a.py": shifted(PY, 30)},
        DIFF_MOD,
        {"a.py": shifted(PY.replace("'a'", "'A'"), 30)},
    ),
    (
        "create",
        {},
        "--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1,2 @@\n+one\n+two\n",
        {"n.txt": b"one\ntwo\n"},
    ),
    (
        "delete",
        {"d.txt": b"one\n"},
        "--- a/d.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-one\n",
        {"d.txt": None},
    ),
    (
        "crlf file, lf diff",
        {"w.txt": b"a\r\nb\r\n"},
        "--- a/w.txt\n+++ b/w.txt\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n",
        {"w.txt": b"a\r\nc\r\n"},
    ),
]


@pytest.mark.parametrize(
    ("name", "files", "diff", "expected"), DIFF_OK, ids=[c[0] for c in DIFF_OK]
)
def test_diff_plan(name, files, diff, expected) -> None:
    change = plan_diff(diff, reader(files))
    for path, content in expected.items():
        assert change.new_bytes(path) == content
    assert PatchSet(change.diff)


DIFF_ERRORS = [
    (
        "hunk misfit",
        {"a.py": PY.replace("'a'", "'q'").encode()},
        DIFF_MOD,
        ErrorCode.PATCH_FAILED,
        {"hunk": 1},
    ),
    (
        "garbage",
        {"a.py": PY.encode()},
        "--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n x\n",
        ErrorCode.PATCH_FAILED,
        {},
    ),
    ("empty", {}, "hello\n", ErrorCode.PATCH_FAILED, {}),
    (
        "create existing",
        {"n.txt": b"x\n"},
        "--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1 @@\n+one\n",
        ErrorCode.PATCH_FAILED,
        {},
    ),
    (
        "syntax",
        {"a.py": PY.encode()},
        DIFF_MOD.replace("+        return 'A'", "+        return ("),
        ErrorCode.SYNTAX_ERROR,
        {"line": 3},
    ),
    ("no change", {"a.py": PY.encode()}, DIFF_MOD.replace("'A'", "'a'"), ErrorCode.NO_CHANGE, {}),
]


@pytest.mark.parametrize(
    ("name", "files", "diff", "code", "details"), DIFF_ERRORS, ids=[c[0] for c in DIFF_ERRORS]
)
def test_diff_errors(name, files, diff, code, details) -> None:
    with pytest.raises(BridgeError) as caught:
        plan_diff(diff, reader(files))
    assert caught.value.code == code, caught.value.message
    for key, value in details.items():
        assert caught.value.details[key] == value


def test_second_hunk_named() -> None:
    body = "".join(f"line {i}\n" for i in range(1, 41))
    diff = (
        "--- a/t.txt\n+++ b/t.txt\n@@ -2,1 +2,1 @@\n-line 2\n+LINE 2\n"
        "@@ -30,1 +30,1 @@\n-line 99\n+LINE 30\n"
    )
    with pytest.raises(BridgeError) as caught:
        plan_diff(diff, reader({"t.txt": body.encode()}))
    assert caught.value.details["hunk"] == 2 and "hunk 2 of 2" in caught.value.message


def test_sandbox_refusal_propagates(tmp_path: Path) -> None:
    from opik_connect.connect.proposals.edit_engine import read_current
    from opik_connect.connect.sandbox.policy import PathPolicy

    policy = PathPolicy(tmp_path)
    with pytest.raises(BridgeError) as caught:
        plan_edits([edit(".env", "", "X=1\n")], lambda p: read_current(policy, lambda *_: True, p))
    assert caught.value.code == ErrorCode.SENSITIVE_PATH
