"""No platform pattern can freeze the daemon, and search reads files only through the race-free
opener: a file flipped to a symlink to an outside file never leaks through SearchFiles."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from sandbox_repo import make_repo

from opik_connect.config import ProjectConfig
from opik_connect.connect.sandbox.linear_regex import compile_line_search
from opik_connect.connect.sandbox.policy import PathPolicy
from opik_connect.connect.sandbox.read_commands import Sandbox
from opik_connect.connect.sandbox.search_scan import SearchStopped, scan_files
from opik_connect.protocol import BridgeError, ErrorCode, ListFilesArgs, SearchFilesArgs

CATASTROPHIC = [
    "^(?:.+)+QQQ$|sk-ant",
    "(a*)*b",
    "(a|aa)+$",
    "(x+x+)+y",
    "^(\\w+\\s?)*$Q",
    "(.*a){20}",
]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "proj")
    (root / "settings.py").write_text(
        'KEY = "sk-ant-api03-' + "a" * 40 + '"\n' + "a" * 5000 + "\n" + "x" * 3000 + "\n"
    )
    return root


@pytest.mark.timeout(30)
@pytest.mark.parametrize("ripgrep", ["auto", None])
@pytest.mark.parametrize("pattern", CATASTROPHIC)
async def test_backtracking_patterns_finish(repo: Path, pattern: str, ripgrep) -> None:
    sandbox = await Sandbox.open(repo, ProjectConfig(), ripgrep=ripgrep)
    result = await sandbox.search_files(SearchFilesArgs(pattern=pattern))
    assert all("sk-ant-api03-a" not in m.content for m in result.matches)


@pytest.mark.parametrize("pattern", ["a(?=b)", "(?<!x)y", "(a)\\1", "a{1001}"])
async def test_what_the_linear_engine_lacks_is_search_failed(repo: Path, pattern: str) -> None:
    """Opik's git grep -P takes these; RE2 cannot, on every search path alike: the code is
    Opik's own for a pattern its engine refuses, and the message names RE2."""
    sandbox = await Sandbox.open(repo, ProjectConfig())
    with pytest.raises(BridgeError) as info:
        await sandbox.search_files(SearchFilesArgs(pattern=pattern))
    assert info.value.code == ErrorCode.SEARCH_FAILED
    assert "RE2" in info.value.message


@pytest.mark.timeout(30)
@pytest.mark.parametrize("glob", ["**?" * 12 + "X", "*?" * 100 + "X"])
async def test_catastrophic_globs_finish(repo: Path, glob: str) -> None:
    (repo / ("d/" * 10)).mkdir(parents=True)
    (repo / ("d/" * 10) / ("f" * 40 + ".py")).write_text("x\n")
    sandbox = await Sandbox.open(repo, ProjectConfig())
    listed = await sandbox.list_files(ListFilesArgs(pattern=glob, depth=5))
    assert [f for f in listed.files if not f.endswith("/")] == []
    result = await sandbox.search_files(SearchFilesArgs(pattern="x", glob=glob))
    assert result.matches == []


def test_a_stopped_scan_gives_up(repo: Path) -> None:
    """Cancellation and the deadline set the flag; the worker thread then stops, so shutdown
    never waits on a search."""
    stop = threading.Event()
    stop.set()
    with pytest.raises(SearchStopped):
        scan_files(
            PathPolicy(repo), ["app.py"], compile_line_search("x"), frozenset(["app.py"]), stop
        )


@pytest.mark.timeout(120)
async def test_a_file_flipping_to_an_outside_symlink_never_leaks(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj")
    outside = tmp_path / "outside.txt"
    outside.write_text("needle LOOT from outside\n")
    target = root / "flip.py"
    target.write_text("needle inside\n")
    sandbox = await Sandbox.open(root, ProjectConfig())
    done = threading.Event()

    def flip() -> None:
        spare = root / "flip.tmp"
        while not done.is_set():
            os.symlink(outside, spare)
            os.replace(spare, target)
            spare.write_text("needle inside\n")
            os.replace(spare, target)

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        for _ in range(150):
            result = await sandbox.search_files(SearchFilesArgs(pattern="needle|LOOT"))
            assert all("LOOT" not in m.content for m in result.matches)
    finally:
        done.set()
        flipper.join()
