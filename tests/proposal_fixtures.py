"""Shared helpers for the proposal tests: a real git repo, a sandbox stand-in, git snapshots."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from opik_connect.protocol import BridgeError, ErrorCode

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


def check_path_for(root: Path):
    """The sandbox contract: root-relative in, absolute out, BridgeError for anything else."""

    def check(path: str) -> Path:
        if path.startswith("/") or ".." in Path(path).parts or "\0" in path:
            raise BridgeError(ErrorCode.PATH_TRAVERSAL, f"{path} leaves the root")
        if Path(path).name.startswith(".env") or ".git" in Path(path).parts:
            raise BridgeError(ErrorCode.SENSITIVE_PATH, f"{path} is sensitive")
        return root / path

    return check


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
