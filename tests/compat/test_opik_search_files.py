"""Opik's SearchFiles handler tests (sdks/python/tests/unit/runner/bridge_handlers/
test_search_files.py in comet-ml/opik, SDK 2.2.122), ported to our SearchFiles; each runs with
ripgrep and with the git grep fallback. Opik's two tests that inspect its `git grep` command
line (mocked subprocess) are ported as the behaviour that command line is for."""

from __future__ import annotations

from pathlib import Path

import pytest
from opik_compat_kit import code_of, commit, git, run

from opik_connect.config import ProjectConfig
from opik_connect.connect.sandbox.read_commands import Sandbox
from opik_connect.git_runner import NotAGitRepository


@pytest.fixture(params=["auto", None], ids=["rg", "git-grep"])
def engine(request: pytest.FixtureRequest) -> str | None:
    return request.param


@pytest.fixture
def search(engine: str | None):
    async def search(root: Path, **args: object) -> dict:
        return await run(root, "SearchFiles", args, ripgrep=engine)

    return search


def setup_files(root: Path) -> None:
    (root / "app.py").write_text("def hello():\n    return 'world'\n\ndef goodbye():\n    pass\n")
    (root / "lib.py").write_text("import os\nimport sys\n")
    (root / "src").mkdir()
    (root / "src" / "deep.py").write_text("def deep_func():\n    pass\n")
    commit(root)


async def test_search_files__regex_pattern__finds_matches(repo: Path, search) -> None:
    setup_files(repo)
    result = await search(repo, pattern=r"def \w+")
    assert result["total_matches"] >= 2
    assert any(m["file"] == "app.py" for m in result["matches"])


async def test_search_files__match_found__includes_context_lines(repo: Path, search) -> None:
    setup_files(repo)
    result = await search(repo, pattern="return")
    match = result["matches"][0]
    assert "context_before" in match
    assert "context_after" in match


async def test_search_files__glob_filter__restricts_to_matching_files(repo: Path, search) -> None:
    (repo / "a.py").write_text("target\n")
    (repo / "b.txt").write_text("target\n")
    commit(repo)
    result = await search(repo, pattern="target", glob="*.py")
    files = [m["file"] for m in result["matches"]]
    assert "a.py" in files
    assert "b.txt" not in files


async def test_search_files__subdir_scope__searches_only_subdir(repo: Path, search) -> None:
    setup_files(repo)
    result = await search(repo, pattern="def", path="src")
    files = [m["file"] for m in result["matches"]]
    assert files and all("src/" in f for f in files)


async def test_search_files__path_traversal__raises_error(repo: Path, engine) -> None:
    args = {"pattern": "x", "path": "../../"}
    assert await code_of(repo, "SearchFiles", args, ripgrep=engine) == "path_traversal"


async def test_search_files__no_matches__returns_empty(repo: Path, search) -> None:
    (repo / "file.py").write_text("nothing here\n")
    commit(repo)
    result = await search(repo, pattern="ZZZZZ")
    assert result["matches"] == []
    assert result["total_matches"] == 0


async def test_search_files__empty_pattern__raises_error(repo: Path, engine) -> None:
    assert await code_of(repo, "SearchFiles", {"pattern": ""}, ripgrep=engine) == (
        "match_not_found"
    )


async def test_search_files__not_a_git_repo__raises_error(tmp_path: Path) -> None:
    """DELIBERATE: git's view is what the bridge serves, so the daemon refuses to start outside
    a git work tree (NotAGitRepository, a clear message) rather than answering each command
    with not_a_git_repository."""
    (tmp_path / "file.py").write_text("hello\n")
    with pytest.raises(NotAGitRepository):
        await Sandbox.open(tmp_path, ProjectConfig())


async def test_search_files__untracked_file__is_searched(repo: Path, search) -> None:
    commit(repo)
    (repo / "untracked.py").write_text("def untracked_func():\n    pass\n")
    result = await search(repo, pattern=r"def \w+")
    files = [m["file"] for m in result["matches"]]
    assert "untracked.py" in files


async def test_search_files__uses_untracked_flag(repo: Path, search) -> None:
    """Opik checks that `git grep` gets --untracked (with --exclude-standard implied): untracked
    files are searched, ignored ones are not."""
    (repo / ".gitignore").write_text("*.log\n")
    commit(repo)
    (repo / "new.py").write_text("target\n")
    (repo / "debug.log").write_text("target\n")
    result = await search(repo, pattern="target")
    assert [m["file"] for m in result["matches"]] == ["new.py"]


async def test_search_files__glob_takes_precedence_over_path(repo: Path, search) -> None:
    """DELIBERATE: Opik's `git grep` cannot take a glob and a path together, so it drops the
    path; here both apply (files under `path` matching `glob`), which is what a caller giving
    both asks for."""
    (repo / "src").mkdir()
    (repo / "src" / "a.txt").write_text("target\n")
    (repo / "b.txt").write_text("target\n")
    git(repo, "add", "-A")
    result = await search(repo, pattern="target", glob="*.txt", path="src")
    assert [m["file"] for m in result["matches"]] == ["src/a.txt"]
