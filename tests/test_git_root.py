"""find_git_root agrees with `git rev-parse --show-toplevel`; the plain case needs no GitPython."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from proposal_fixtures import git, make_repo

from opik_connect.git_runner import NotAGitRepository, find_git_root


def git_top(path: Path) -> Path:
    return Path(git(path, "rev-parse", "--show-toplevel")).resolve()


def test_a_plain_repo_a_nested_one_and_a_linked_worktree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "deep" / "er").mkdir(parents=True)
    inner = make_repo(repo / "deep" / "inner")
    git(repo, "worktree", "add", "-q", str(tmp_path / "linked"), "-b", "other")
    (tmp_path / "linked" / "sub").mkdir()
    for where in (
        repo,
        repo / "deep" / "er",
        inner,
        tmp_path / "linked",
        tmp_path / "linked" / "sub",
    ):
        assert find_git_root(where) == git_top(where), where
    assert find_git_root(inner) == inner.resolve()
    assert find_git_root(tmp_path / "linked" / "sub") == (tmp_path / "linked").resolve()


def test_a_submodule_is_its_own_top(tmp_path: Path) -> None:
    library = make_repo(tmp_path / "library")
    repo = make_repo(tmp_path / "repo")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(library), "lib")
    sub = repo / "lib"
    assert (sub / ".git").is_file()
    assert find_git_root(sub) == git_top(sub) == sub.resolve()


def test_a_moved_work_tree_and_git_dir_from_the_environment_are_git_s_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    git(repo, "config", "core.worktree", str(elsewhere))
    assert find_git_root(repo) == git_top(repo) == elsewhere.resolve()
    git(repo, "config", "--unset", "core.worktree")
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(elsewhere))
    assert find_git_root(tmp_path) == elsewhere.resolve()


def test_a_bare_repo_the_git_dir_and_a_plain_folder_are_refused(tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    repo = make_repo(tmp_path / "repo")
    (tmp_path / "plain").mkdir()
    for where, why in (
        (bare, "git directory"),
        (bare / "refs", "git directory"),
        (repo / ".git" / "refs", "git directory"),
        (tmp_path / "plain", "not inside a git repository"),
    ):
        with pytest.raises(NotAGitRepository, match=why):
            find_git_root(where)
        assert (
            subprocess.run(
                ["git", "rev-parse", "--show-toplevel"], cwd=where, capture_output=True
            ).returncode
            != 0
        )


def test_finding_a_plain_root_imports_no_gitpython(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    probe = (
        "import sys\nfrom pathlib import Path\n"
        "from opik_connect.git_runner import find_git_root\n"
        f"print(find_git_root(Path({str(repo)!r})), 'git' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.split() == [str(repo.resolve()), "False"]
