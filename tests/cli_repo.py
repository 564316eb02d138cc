"""A project committed to a fresh git repo: where the CLI tests run the commands."""

from __future__ import annotations

import subprocess
from pathlib import Path


def commit_project(root: Path, files: dict[str, str]) -> Path:
    """Write `files` under root, then git init and commit them all as one commit."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "i"],
        check=True,
    )
    return root
