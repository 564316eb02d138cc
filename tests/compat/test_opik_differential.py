"""Opik's own handlers (the `opik` package, a test dependency) and ours, side by side on the same
git repo and the same arguments: the results must be equal, field for field, except where we
differ on purpose (each such place is asserted below as a difference, and named)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opik_compat_kit import commit, run

handlers = pytest.importorskip("opik.runner.bridge_handlers")
from opik.runner.bridge_handlers.list_files import ListFilesHandler  # noqa: E402
from opik.runner.bridge_handlers.read_file import ReadFileHandler  # noqa: E402
from opik.runner.bridge_handlers.search_files import SearchFilesHandler  # noqa: E402

OPIK = {
    "ListFiles": ListFilesHandler,
    "ReadFile": ReadFileHandler,
    "SearchFiles": SearchFilesHandler,
}
HITS = (1, 2, 8, 17, 26, 27, 30)

FILES = {
    "README.md": "# project\nSee src/.\n",
    "Makefile": "all:\n\tpython -m app\n",
    "app.py": "def hello():\n    return 'world'\n\ndef goodbye():\n    pass\n",
    "src/core.py": "import os\n\n\ndef deep_func():\n    return os.sep\n",
    "src/Alpha.txt": "alpha\n",
    "src/beta.txt": "beta\n",
    "src/lib/util.py": "def util():\n    pass\n",
    "src/lib/deeper/x.md": "x\n",
    "docs/guide.md": "guide\n" * 3,
    "crlf.txt": "one\r\ntwo\r\n",
    "no_newline.txt": "a\nb",
    "hits.txt": "".join(f"HIT {i}\n" if i in HITS else f"line {i}\n" for i in range(1, 40)),
    "long.txt": "z" * 600_000 + "\nend\n",
    "unicode.py": "café = '☕'\n" * 3,
}


@pytest.fixture
def tree(repo: Path) -> Path:
    for name, text in FILES.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(text.encode())
    commit(repo)
    return repo


def opik(root: Path, command: str, args: dict[str, Any]) -> dict[str, Any]:
    return OPIK[command](root).execute(args, timeout=30.0)


async def ours(root: Path, command: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await run(root, command, args)
    if command != "ListFiles":  # DELIBERATE addition: how many secrets were redacted
        assert result.pop("redactions") == 0
    return result


def without_git_dir(result: dict[str, Any]) -> dict[str, Any]:
    """DELIBERATE: Opik lists the `.git/` directory itself; git's internals are a sensitive
    path here, never listed or read."""
    files = [f for f in result["files"] if f != ".git/" and not f.startswith(".git/")]
    hidden = len(result["files"]) - len(files)
    return {**result, "files": files, "total": result["total"] - hidden}


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"depth": 2},
        {"depth": 5},
        {"path": "src"},
        {"path": "src", "depth": 3},
        {"pattern": "*.py", "depth": 5},
        {"pattern": "src/*.py", "depth": 2},
        {"pattern": "*.md", "path": "src", "depth": 3},
        {"pattern": "[ab]*", "depth": 2},
        {"pattern": None},
        {"path": "src/lib/"},
    ],
)
async def test_list_files_same_as_opiks(tree: Path, args: dict[str, Any]) -> None:
    assert await ours(tree, "ListFiles", args) == without_git_dir(opik(tree, "ListFiles", args))


@pytest.mark.parametrize(
    "args",
    [
        {"path": "app.py"},
        {"path": "app.py", "offset": 1, "limit": 2},
        {"path": "app.py", "offset": 99},
        {"path": "app.py", "limit": 0},
        {"path": "crlf.txt"},
        {"path": "no_newline.txt"},
        {"path": "long.txt"},
        {"path": "long.txt", "offset": 1},
        {"path": "hits.txt", "offset": 5, "limit": 5000},
        {"path": "unicode.py"},
    ],
)
async def test_read_file_same_as_opiks(tree: Path, args: dict[str, Any]) -> None:
    assert await ours(tree, "ReadFile", args) == opik(tree, "ReadFile", args)


async def test_read_file_splits_lines_at_newlines_only(tree: Path) -> None:
    """DELIBERATE: a line ends at '\\n' here, as git grep and SearchFiles count lines; Opik's
    ReadFile uses str.splitlines, which also splits at '\\f', '\\v', a lone '\\r', '\\x1c'-'\\x1e',
    '\\x85', U+2028 and U+2029, so its line numbers can disagree with its own SearchFiles."""
    (tree / "feed.py").write_text("a = 1\n\x0c\nb = 2\n")
    commit(tree)
    args = {"path": "feed.py"}
    assert (await ours(tree, "ReadFile", args))["total_lines"] == 3
    assert opik(tree, "ReadFile", args)["total_lines"] == 4


@pytest.mark.parametrize(
    "args",
    [
        {"pattern": "HIT"},
        {"pattern": r"def \w+"},
        {"pattern": "^def"},
        {"pattern": r"pass$"},
        {"pattern": "return", "glob": "*.py"},
        {"pattern": "def", "path": "src"},
        {"pattern": "café"},
        {"pattern": "zzz"},
        {"pattern": "nothing-matches-this"},
    ],
)
async def test_search_files_same_as_opiks(tree: Path, args: dict[str, Any]) -> None:
    assert await ours(tree, "SearchFiles", args) == opik(tree, "SearchFiles", args)


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("ReadFile", {"path": ""}),
        ("ReadFile", {"path": "src"}),
        ("ReadFile", {"path": "nope.py"}),
        ("ReadFile", {"path": "../x"}),
        ("ListFiles", {"path": "nope"}),
        ("ListFiles", {"path": "app.py"}),
        ("ListFiles", {"path": "../"}),
        ("SearchFiles", {"pattern": ""}),
        ("SearchFiles", {"pattern": "x" * 501}),
        ("SearchFiles", {"pattern": "(unclosed"}),
        ("SearchFiles", {"pattern": "x", "path": "nope"}),
        ("SearchFiles", {"pattern": "x", "path": "../"}),
    ],
)
async def test_error_codes_same_as_opiks(tree: Path, command: str, args: dict[str, Any]) -> None:
    with pytest.raises(handlers.CommandError) as theirs:
        opik(tree, command, args)
    with pytest.raises(Exception) as mine:
        await ours(tree, command, args)
    assert mine.value.code.value == theirs.value.code


@pytest.mark.parametrize("pattern", [r"(?<=def )\w+", r"(\w)\1", r"\w+(?= =)"])
async def test_look_around_and_back_references_are_search_failed(tree: Path, pattern: str) -> None:
    """DELIBERATE: Opik runs `git grep -P` (PCRE, which backtracks); every pattern here runs on
    RE2, linear in the text whatever the pattern, so no pattern can stall the daemon and none
    can time a secret. What RE2 lacks is refused with Opik's code for a bad regex."""
    opik(tree, "SearchFiles", {"pattern": pattern})  # PCRE takes it
    with pytest.raises(Exception) as mine:
        await ours(tree, "SearchFiles", {"pattern": pattern})
    assert mine.value.code.value == "search_failed" and "RE2" in str(mine.value)


async def test_ignored_and_sensitive_files_are_neither_listed_nor_read(tree: Path) -> None:
    """DELIBERATE: what the platform sees is git's view minus sensitive paths. Opik 2.2.122
    lists and reads a git-ignored file and a `.env` like any other; here the first is not
    found (git ignores it) and the second is sensitive_path (listed nowhere, never read)."""
    (tree / ".gitignore").write_text("*.log\n")
    (tree / "debug.log").write_text("ignored\n")
    (tree / ".env").write_text("API_TOKEN=abc\n")
    theirs = opik(tree, "ListFiles", {})["files"]
    assert "debug.log" in theirs and ".env" in theirs
    mine = (await ours(tree, "ListFiles", {}))["files"]
    assert "debug.log" not in mine and ".env" not in mine
    assert opik(tree, "ReadFile", {"path": ".env"})["content"] == "API_TOKEN=abc\n"
    for path, code in (("debug.log", "file_not_found"), (".env", "sensitive_path")):
        with pytest.raises(Exception) as mine_error:
            await ours(tree, "ReadFile", {"path": path})
        assert mine_error.value.code.value == code


async def test_secrets_in_readable_files_are_redacted(tree: Path) -> None:
    """DELIBERATE: secret-looking values in a readable file are replaced before they leave,
    and the result says how many (`redactions`); Opik sends the file as it is."""
    key = "sk-ant-api03-" + "A1b2C3d4" * 5
    (tree / "settings.py").write_text(f'KEY = "{key}"\n')
    commit(tree)
    assert key in opik(tree, "ReadFile", {"path": "settings.py"})["content"]
    mine = await run(tree, "ReadFile", {"path": "settings.py"})
    assert key not in mine["content"] and mine["redactions"] == 1
    found = await run(tree, "SearchFiles", {"pattern": "KEY"})
    assert key not in found["matches"][0]["content"] and found["redactions"] == 1
