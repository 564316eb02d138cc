"""Shared helpers for the proposal tests: a real git repo, a sandbox stand-in, git snapshots."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from opik_connect.connect.proposals import sandbox_reader
from opik_connect.connect.sandbox_policy import PathPolicy

AGENT_PY = (
    "def answer(question):\n"
    "    if not question:\n"
    "        return 'empty'\n"
    "    return question.upper()\n"
)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "commit.gpgsign", "false")
    (path / "agent.py").write_text(AGENT_PY)
    (path / "notes.txt").write_text("one\ntwo\nthree\n")
    (path / ".gitignore").write_text("*.log\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def sandbox_reader_for(root: Path):
    """The real proposal sandbox for `root`: the race-free opener plus git's visibility."""
    return sandbox_reader(PathPolicy(root))


def snapshot(root: Path) -> dict[str, object]:
    """Everything of the user's checkout that must stay byte-identical."""
    files = {}
    for path in sorted(root.rglob("*")):
        if ".git" in path.relative_to(root).parts or not path.is_file():
            continue
        files[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    git_dir = root / ".git"
    stash_log = git_dir / "logs" / "refs" / "stash"
    return {
        "head": (git_dir / "HEAD").read_text(),
        "index": hashlib.sha256((git_dir / "index").read_bytes()).hexdigest(),
        "files": files,
        "stash": stash_log.read_text() if stash_log.exists() else None,
        "main": git(root, "rev-parse", "refs/heads/main"),
    }
