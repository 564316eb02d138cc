"""git's view of the repository: visibility, branch and HEAD, refusal outside a work tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from opik_connect.config import ProjectConfig
from opik_connect.connect.sandbox.read_commands import Sandbox
from opik_connect.connect.sandbox.repo_files import RepoFiles
from opik_connect.git_runner import NotAGitRepository
from opik_connect.protocol import ListFilesArgs, ReadFileArgs
from tests.sandbox_repo import git, make_repo


async def test_visible_files_are_tracked_plus_untracked_not_ignored(tmp_path: Path) -> None:
    repo = await RepoFiles.open(make_repo(tmp_path / "proj"))
    assert sorted(await repo.visible_files()) == [
        ".gitignore",
        "README.md",
        "app.py",
        "notes.txt",
        "pkg/util.py",
    ]
    assert await repo.visible_files("pkg") == ["pkg/util.py"]


async def test_ignored_asks_git_about_paths_that_may_not_exist(tmp_path: Path) -> None:
    repo = await RepoFiles.open(make_repo(tmp_path / "proj"))
    assert await repo.ignored(["debug.log", "gone.log", "build/x.py", "app.py", "new.py"]) == {
        "debug.log",
        "gone.log",
        "build/x.py",
    }


async def test_branch_and_head_before_first_commit_and_detached(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    git(root, "init", "-q", "-b", "trunk")
    repo = await RepoFiles.open(root)
    assert await repo.branch_and_head() == ("trunk", None)
    make_repo(tmp_path / "proj")
    head = git(tmp_path / "proj", "rev-parse", "HEAD").strip()
    git(tmp_path / "proj", "checkout", "-q", "--detach")
    assert await (await RepoFiles.open(tmp_path / "proj")).branch_and_head() == (None, head)


@pytest.mark.parametrize("kind", ["plain_dir", "missing"])
async def test_outside_a_work_tree_is_refused(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "plain" if kind == "plain_dir" else tmp_path / "missing"
    if kind == "plain_dir":
        target.mkdir()
    with pytest.raises(NotAGitRepository):
        await RepoFiles.open(target)


async def test_root_may_be_a_directory_inside_the_repo(tmp_path: Path) -> None:
    repo_root = make_repo(tmp_path / "proj")
    sandbox = await Sandbox.open(repo_root / "pkg", ProjectConfig())
    assert (await sandbox.list_files(ListFilesArgs())).files == ["util.py"]
    assert "needle" in (await sandbox.read_file(ReadFileArgs(path="util.py"))).content
    assert (await sandbox.summary()).visible_files == 1
