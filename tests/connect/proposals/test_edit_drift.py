"""Drift the edit engine forgives, undone in the new text too, and the errors it gives instead."""

from __future__ import annotations

import pytest

from opik_connect.connect.proposals.edit_engine import decode_file, plan_diff, plan_edits
from opik_connect.protocol import BridgeError, ErrorCode, FileEdit

F = "def f():\n    x = 1\n    y = 2\n"
TABS = "def f():\n\tif a:\n\t\tx = 1\n\treturn x\n"
NESTED = "class A:\n    def f(self):\n        if a:\n            x = 1\n"


def plan(files: dict[str, str | bytes], *edits: tuple[str, str]) -> str:
    """The new text of a.py after edits (old, new) to it."""
    data = {p: t if isinstance(t, bytes) else t.encode() for p, t in files.items()}
    change = plan_edits(
        [FileEdit(path="a.py", old_string=o, new_string=n) for o, n in edits],
        lambda p: decode_file(p, data.get(p)),
    )
    return (change.new_bytes("a.py") or b"").decode()


def refused(files: dict[str, str], *edits: tuple[str, str]) -> BridgeError:
    with pytest.raises(BridgeError) as caught:
        plan(files, *edits)
    return caught.value


def diffed(text: str, diff: str) -> str:
    change = plan_diff(diff, lambda p: decode_file(p, text.encode() if p == "a.py" else None))
    return change.after["a.py"] or ""


def diff_refused(text: str, diff: str) -> BridgeError:
    with pytest.raises(BridgeError) as caught:
        diffed(text, diff)
    return caught.value


APPLIED = [
    # The four wrong-content defects of issue 13.
    ("old ends in newline, new does not", F, [("    x = 1\n", "    x = 10")], "    x = 10\n    y"),
    ("new ends in newline, old does not", F, [("    x = 1", "    x = 10\n")], "    x = 10\n    y"),
    (
        "curly quotes in both",
        "# say 'hi' now\nx = 1\n",
        [("# say \u2018hi\u2019 now", "# say \u2018hello\u2019 now\n# and \u201cbye\u201d")],
        "# say 'hello' now\n# and \"bye\"\nx = 1\n",
    ),
    # Applied now, refused before.
    (
        "gutter pipe",
        F,
        [("   2| x = 1\n   3| y = 2", "   2| x = 5\n   3| y = 6")],
        "x = 5\n    y = 6",
    ),
    ("gutter tab", F, [("2\t    x = 1\n", "2\t    x = 5\n")], "    x = 5\n"),
    ("gutter tab and pipe", F, [("     2\t|     x = 1", "    x = 5")], "    x = 5\n"),
    ("gutter arrow, new unnumbered", F, [("2→    x = 1", "    x = 7")], "    x = 7\n"),
    (
        "edits in order",
        F,
        [("x = 1\n", "x = 5\n"), ("x = 5\n    y = 2", "x = 6\n    y = 7")],
        "    x = 6\n    y = 7\n",
    ),
    (
        "tab file, spaces in old and new",
        TABS,
        [("    if a:\n        x = 1\n", "    if a:\n        x = 2\n        y = 3\n")],
        "\tif a:\n\t\tx = 2\n\t\ty = 3\n\treturn x\n",
    ),
    (
        "partial first line, leading whitespace changed",
        NESTED,
        [("  def f(self):\n    if a:\n        x = 1", "  def g(self):\n    if a:\n        x = 2")],
        "    def g(self):\n        if a:\n            x = 2\n",
    ),
    (
        "BOM copied into old",
        b"\xef\xbb\xbfimport os\nx = 1\n",
        [("\ufeffimport os\n", "\ufeffimport sys\n")],
        "import sys\nx = 1\n",
    ),
    (
        "kept lines keep the file's trailing space",
        "a = 1  \nb = 2\n",
        [("a = 1\nb = 2", "a = 1\nb = 3")],
        "a = 1  \nb = 3\n",
    ),
    (
        "kept characters keep the file's curly quotes",
        "x = \u201cdone\u201d\n",
        [('x = "done"', 'x = "done!"')],
        "x = \u201cdone!\u201d\n",
    ),
    (
        "straight quotes the model added are not curled",
        "# it\u2019s\nx = 1\n",
        [("# it's\nx = 1", "# it's\nx = 'a'")],
        "# it\u2019s\nx = 'a'\n",
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "edits", "expected"), APPLIED, ids=[c[0] for c in APPLIED]
)
def test_drift_is_forgiven_and_undone(name, text, edits, expected) -> None:
    after = plan({"a.py": text}, *edits)
    assert expected in after, after
    assert after.count("\ufeff") == after.startswith("\ufeff"), "a BOM only where it was"


def test_bom_is_kept_once() -> None:
    data = {"a.py": b"\xef\xbb\xbfimport os\n"}
    change = plan_edits(
        [FileEdit(path="a.py", old_string="\ufeffimport os", new_string="\ufeffimport sys")],
        lambda p: decode_file(p, data.get(p)),
    )
    assert change.new_bytes("a.py") == b"\xef\xbb\xbfimport sys\n"


def test_replacing_a_line_never_joins_the_next() -> None:
    assert plan({"a.py": F}, ("    x = 1\n", "    x = 10")) == "def f():\n    x = 10\n    y = 2\n"


def test_adding_a_newline_inserts_no_blank_line() -> None:
    assert plan({"a.py": F}, ("    x = 1", "    x = 10\n")) == "def f():\n    x = 10\n    y = 2\n"


def test_not_found_names_the_line_and_whitespace() -> None:
    exc = refused({"a.py": F}, ("def f():\n      x = 1\n    y = 9", "z"))
    assert exc.code == ErrorCode.MATCH_NOT_FOUND
    assert "line 3 (file line 3)" in exc.message and "column 9" in exc.message


def test_not_found_quotes_no_file_text_in_the_message() -> None:
    exc = refused({"a.py": 'KEY = "sk-live-0123456789abcdef"\n'}, ('KEY = "sk-other"', "K = 1"))
    assert "0123" not in exc.message, "file text goes only in closest, which is redacted whole"
    # Compared with the redacted line (KEY = "[REDACTED:...]"), so the column says nothing of it.
    assert "'sk-other\"'" in exc.message and "column 8" in exc.message


def test_not_found_names_an_invisible_bom_mid_text() -> None:
    exc = refused({"a.py": F}, ("def f():\n\ufeff    x = 1\n    y = 3", "z"))
    assert "invisible BOM (U+FEFF)" in exc.message and "line 2" in exc.message


def test_not_found_names_inconsistent_indentation() -> None:
    exc = refused({"a.py": F}, ("def f():\n      x = 1\n    y = 2", "z"))
    assert "indentation" in exc.message and "6 spaces" in exc.message
    assert exc.details["closest"].count("\n") == 2 and "x = 1" not in exc.message


def test_not_found_after_an_earlier_edit_says_edits_apply_in_order() -> None:
    exc = refused({"a.py": F}, ("x = 1", "x = 5"), ("x = 1\n    y", "x = 1\n    z"))
    assert exc.code == ErrorCode.MATCH_NOT_FOUND and exc.details["edit"] == 1
    assert "before edit 0" in exc.message and "apply in order" in exc.message


def test_ambiguous_after_normalising_says_what_to_do() -> None:
    exc = refused({"a.py": "a = 1  \nb\na = 1\t\n"}, ("a = 1 \n", "a = 2\n"))
    assert exc.code == ErrorCode.MATCH_AMBIGUOUS and exc.details["lines"] == [1, 3]
    assert "after normalising" in exc.message and "include more surrounding lines" in exc.message


def test_empty_old_string_on_a_file_is_refused() -> None:
    exc = refused({"a.py": F}, ("", "x = 1\n"))
    assert exc.code == ErrorCode.INVALID_ARGS and "quote the text to replace" in exc.message


def test_gutter_is_kept_when_the_file_has_it() -> None:
    listing = "  1| alpha\n  2| beta\n"
    assert plan({"a.py": listing}, ("  2| beta", "  2| gamma")) == "  1| alpha\n  2| gamma\n"


def test_numbers_that_do_not_run_on_are_not_a_gutter() -> None:
    exc = refused({"a.py": F}, ("2| x = 1\n9| y = 2", "x"))
    assert exc.code == ErrorCode.MATCH_NOT_FOUND


BODY = "".join(f"line {i}\n" for i in range(1, 81))


def hunk(header: str, *lines: str) -> str:
    return "--- a/a.py\n+++ b/a.py\n" + header + "\n" + "".join(x + "\n" for x in lines)


def test_diff_undercounting_its_new_side_applies_every_line() -> None:
    diff = hunk("@@ -1,2 +1,3 @@", " def f():", "-    x = 1", "+    x = 10", "+    z = 3")
    assert diffed(F, diff) == "def f():\n    x = 10\n    z = 3\n    y = 2\n"


def test_diff_overcounting_is_applied_by_its_lines() -> None:
    diff = hunk("@@ -1,4 +1,5 @@", " def f():", "-    x = 1", "+    x = 10", "     y = 2")
    assert diffed(F, diff) == "def f():\n    x = 10\n    y = 2\n"


def test_diff_hunk_far_from_its_header_is_placed_by_its_text() -> None:
    diff = hunk("@@ -70,3 +70,3 @@", " line 29", "-line 30", "+LINE 30", " line 31")
    assert "line 29\nLINE 30\nline 31\n" in diffed(BODY, diff)


def test_diff_context_whitespace_drift_keeps_the_file_lines() -> None:
    text = "def f():  \n    x = 1\n\n    y = 2\n"
    diff = hunk("@@ -1,4 +1,4 @@", " def f():", "-    x = 1", "+    x = 3", "", "     y = 2 ")
    assert diffed(text, diff) == "def f():  \n    x = 3\n\n    y = 2\n"


def test_diff_hunk_twice_in_the_file_is_refused_with_both_places() -> None:
    text = "a\nb\nc\n" + "pad\n" * 30 + "a\nb\nc\n"
    exc = diff_refused(text, hunk("@@ -17,3 +17,3 @@", " a", "-b", "+B", " c"))
    assert exc.code == ErrorCode.PATCH_FAILED and exc.details["lines"] == [1, 34]
    assert "include more context" in exc.message


def test_diff_invented_context_is_named_with_where_the_rest_is() -> None:
    diff = hunk("@@ -40,3 +40,3 @@", " line 40", "-line 41", "+LINE 41", " frobnicate()")
    exc = diff_refused(BODY, diff)
    assert "'frobnicate()'" in exc.message and "nowhere in the file" in exc.message
    assert exc.details["closest_line"] == 40 and "line 40" in exc.details["closest"]


def test_diff_whitespace_drift_that_does_not_line_up_is_explained() -> None:
    text = "if a:\n    x = 1\n    y = 2\n"
    exc = diff_refused(
        text, hunk("@@ -1,3 +1,3 @@", " if a:", "-  x = 1", "+  x = 2", "     y = 2")
    )
    assert "indentation" in exc.message and exc.details["hunk"] == 1


def test_diff_hunks_out_of_order_are_refused_by_name() -> None:
    diff = hunk("@@ -50,1 +50,1 @@", "-line 50", "+L50") + "@@ -3,1 +3,1 @@\n-line 3\n+L3\n"
    exc = diff_refused(BODY, diff)
    assert exc.details["hunk"] == 2 and "file order" in exc.message


def test_diff_parse_errors_name_the_hunk() -> None:
    exc = diff_refused(F, hunk("@@ -1,1 +1,1 @@", " def f():") + "@@ -2,1 +2,1 @@\n")
    assert exc.details["hunk"] == 2 and "hunk 2 of a.py" in exc.message


def test_diff_without_line_numbers_is_placed_by_its_text() -> None:
    assert diffed(F, hunk("@@ @@", "-    y = 2", "+    y = 3")).endswith("    y = 3\n")


def test_diff_deleting_a_file_must_remove_every_line() -> None:
    diff = "--- a/a.py\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-def f():\n"
    assert "deletes a.py" in diff_refused(F, diff).message


def test_diff_line_without_its_prefix_is_refused_not_truncated() -> None:
    diff = hunk("@@ -1,3 +1,3 @@", " a = 1", "b = 2", "-c = 3", "+c = 4")
    exc = diff_refused("a = 1\nb = 2\nc = 3\n", diff)
    assert exc.details["hunk"] == 1 and "stops at 'b = 2', which is not a diff line" in exc.message


def test_diff_prose_after_a_complete_hunk_is_ignored() -> None:
    diff = hunk("@@ -3,1 +3,1 @@", "-    y = 2", "+    y = 3") + "That is the whole change.\n"
    assert diffed(F, diff).endswith("    y = 3\n")


def test_a_partial_first_line_starts_at_a_word_not_inside_one() -> None:
    text = "if a:\n    if ch:\n        x = 1\n    elif ch:\n        x = 1\n"
    after = plan({"a.py": text}, ("if ch:\n    x = 1", "if ch:\n    x = 2"))
    assert after == "if a:\n    if ch:\n        x = 2\n    elif ch:\n        x = 1\n"
