"""The one git runner: the user's hooks never run, their index is never rewritten, one error."""

from __future__ import annotations

import ast
import asyncio
import os
import stat
from pathlib import Path

import pytest
from proposal_fixtures import make_repo, proposal_service, submit_edit
from suite_testkit import git as suite_git
from suite_testkit import make_project, suite_env

from opik_connect import git_runner
from opik_connect.connect.suites.suite_runner import run_suite
from opik_connect.git_runner import (
    GitError,
    NotAGitRepository,
    StartedGit,
    find_git_root,
    run,
    run_async,
)

__all__ = ["suite_env"]

SRC = Path(git_runner.__file__).resolve().parent
HOOKS = [
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "pre-receive",
    "update",
    "proc-receive",
    "post-receive",
    "post-update",
    "reference-transaction",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "sendemail-validate",
    "fsmonitor-watchman",
    "p4-changelist",
    "p4-prepare-changelist",
    "p4-post-changelist",
    "p4-pre-submit",
    "post-index-change",
]


def install_hooks(repo: Path, marker: Path) -> None:
    """Every hook git knows, each recording its name in `marker` when it runs."""
    hooks = repo / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    for name in HOOKS:
        hook = hooks / name
        hook.write_text(f'#!/bin/sh\necho {name} >> "{marker}"\nexit 0\n')
        hook.chmod(hook.stat().st_mode | stat.S_IXUSR)


def test_the_installed_hooks_do_run_for_plain_git(tmp_path: Path) -> None:
    """The hooks below are live: plain git runs them, so their silence later means something."""
    repo, marker = make_repo(tmp_path / "repo"), tmp_path / "hooks.log"
    install_hooks(repo, marker)
    suite_git(repo, "commit", "-q", "--allow-empty", "-m", "x")
    assert {"pre-commit", "reference-transaction"} <= set(marker.read_text().split())


def test_building_and_merging_a_fix_runs_none_of_the_users_hooks(tmp_path: Path) -> None:
    repo, marker = make_repo(tmp_path / "repo"), tmp_path / "hooks.log"
    install_hooks(repo, marker)
    service = proposal_service(repo)
    proposal = submit_edit(service, "Polite", reason="because")
    record = asyncio.run(service.approve(proposal))
    assert record.status == "applied", record.reason
    service.fixes.merge(record)
    service.fixes.drop(service.get(proposal))
    assert "Please ask." in (repo / "agent.py").read_text()
    assert not marker.exists(), marker.read_text()


@pytest.mark.timeout(60)
async def test_a_suite_run_on_the_users_tree_runs_no_hook_and_keeps_their_index(
    suite_env: Path,
) -> None:
    root = make_project(suite_env, "name: s\nitems:\n  - id: one\n    data: {question: q}\n")
    suite_git(root, "init", "-q", "-b", "main")
    suite_git(root, "add", "-A")
    suite_git(root, "commit", "-q", "-m", "initial")
    marker = suite_env / "hooks.log"
    install_hooks(root, marker)
    agent = root / "agentpkg" / "agent.py"
    later = agent.stat().st_mtime_ns + 5_000_000_000
    os.utime(agent, ns=(later, later))
    index = root / ".git" / "index"
    before = (index.read_bytes(), index.stat().st_mtime_ns)
    summary = await run_suite(root, "s", judge=None, workers=1)
    assert summary.commit is not None
    assert (index.read_bytes(), index.stat().st_mtime_ns) == before
    assert not marker.exists(), marker.read_text()


def test_a_failing_command_is_one_error_type_sync_and_async(tmp_path: Path) -> None:
    with pytest.raises(GitError) as raised:
        run(tmp_path, "rev-parse", "HEAD")
    assert raised.value.code == 128 and "not a git repository" in str(raised.value)
    with pytest.raises(GitError) as raised:
        asyncio.run(run_async(tmp_path, "rev-parse", "HEAD"))
    assert raised.value.code == 128
    with pytest.raises(GitError) as raised:
        asyncio.run(StartedGit(tmp_path, "rev-parse", "HEAD").result())
    assert raised.value.code == 128 and "not a git repository" in str(raised.value)
    assert run(tmp_path, "rev-parse", "HEAD", check=False).code == 128


def test_a_started_git_closed_before_it_is_read_is_a_git_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    started = StartedGit(repo, "ls-files", "-z")
    started.close()
    started.close()  # idempotent
    with pytest.raises(GitError, match="closed before its output was read"):
        asyncio.run(started.result())
    assert asyncio.run(StartedGit(repo, "ls-files").result()).text.split() == [
        ".gitignore",
        "agent.py",
        "notes.txt",
    ]


def test_git_missing_is_the_same_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(git_runner.EXECUTABLE_ENV, str(tmp_path / "no-git"))
    for attempt in (
        lambda: run(tmp_path, "status"),
        lambda: asyncio.run(run_async(tmp_path, "status")),
        lambda: asyncio.run(StartedGit(tmp_path, "status").result()),
    ):
        with pytest.raises(GitError, match="git could not be started") as raised:
            attempt()
        assert raised.value.code is None
    with pytest.raises(NotAGitRepository):
        find_git_root(tmp_path)


def test_find_git_root(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "sub").mkdir()
    assert find_git_root(repo / "sub") == repo.resolve()
    with pytest.raises(NotAGitRepository, match="not inside a git repository"):
        find_git_root(tmp_path)
    with pytest.raises(NotAGitRepository, match="not a directory"):
        find_git_root(repo / "agent.py")


def _runs_git_directly(tree: ast.AST) -> list[str]:
    """`import git`, or a call whose first argument is the literal "git"."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == "git" for a in node.names):
            found.append(f"line {node.lineno}: import git")
        elif isinstance(node, ast.ImportFrom) and node.module == "git":
            found.append(f"line {node.lineno}: from git import")
        elif isinstance(node, ast.Call):
            first = node.args[0] if node.args else None
            if isinstance(first, ast.List | ast.Tuple) and first.elts:
                first = first.elts[0]
            if isinstance(first, ast.Constant) and first.value == "git":
                found.append(f"line {node.lineno}: runs git")
    return found


def test_every_git_call_in_src_goes_through_the_runner() -> None:
    offenders = {
        str(path.relative_to(SRC)): hits
        for path in SRC.rglob("*.py")
        if path.name != "git_runner.py"
        and (hits := _runs_git_directly(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert offenders == {}
