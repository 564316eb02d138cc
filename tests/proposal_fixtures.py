"""Shared helpers for the proposal tests: a real git repo, a sandbox stand-in, git snapshots."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pexpect

from opik_connect.connect.proposals.intake import sandbox_reader
from opik_connect.connect.proposals.service import ProposalService
from opik_connect.connect.sandbox.policy import PathPolicy
from opik_connect.protocol import FileEdit, ProposeChangeArgs

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


TESTS_DIR = Path(__file__).resolve().parent


def spawn_harness(script: str, repo: Path, log: Path, **env: str) -> pexpect.spawn:
    """A tests/ harness script on a real 50x120 pseudo-terminal over `repo`, output in `log`."""
    full_env = {
        **os.environ,
        "PYTHONPATH": str(TESTS_DIR),
        "TERM": "xterm",
        "COLUMNS": "120",
        **env,
    }
    child = pexpect.spawn(
        sys.executable,
        [str(TESTS_DIR / script), str(repo)],
        env=full_env,
        timeout=20,
        encoding="utf-8",
        dimensions=(50, 120),
    )
    child.logfile_read = log.open("w")
    return child


def proposal_service(root: Path, **options: Any) -> ProposalService:
    """A ProposalService on `root` reading through the real proposal sandbox: the race-free
    opener plus git's visibility."""
    return ProposalService(root, read=sandbox_reader(PathPolicy(root)), **options)


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


def submit_edit(
    service: ProposalService,
    title: str,
    old: str = "'empty'",
    new: str = "'Please ask.'",
    *,
    reason: str = "r",
    path: str = "agent.py",
) -> str:
    """Submit a one-edit proposal (by default: agent.py's empty answer made polite); its id."""
    edit = FileEdit(path=path, old_string=old, new_string=new)
    args = ProposeChangeArgs(title=title, reason=reason, edits=[edit])
    return asyncio.run(service.submit(args)).proposal_id
