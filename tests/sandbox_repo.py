"""Real git repositories in temp dirs for the sandbox, read-command and watcher tests."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True)
    return result.stdout


def make_repo(root: Path) -> Path:
    """A git work tree with one commit: tracked, untracked, ignored and sensitive files."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    files = {
        ".gitignore": "*.log\nbuild/\nforced.txt\n",
        "app.py": "def handler(request):\n    return request\n",
        "pkg/util.py": "import os\n\n\ndef helper():\n    return 'needle'\n",
        "README.md": "# demo\nneedle in the readme\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "init")
    (root / "notes.txt").write_text("untracked but visible needle\n")
    (root / "debug.log").write_text("ignored needle\n")
    (root / "build").mkdir()
    (root / "build" / "out.py").write_text("ignored build needle\n")
    return root
