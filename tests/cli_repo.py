"""A project committed to a fresh git repo, and the daemon run in it: what CLI tests start from."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
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


def run_daemon_until(
    root: Path, env: dict[str, str], marker: str, *args: str
) -> tuple[list[str], str]:
    """Run `opik-connect *args` in root until a line holds marker (30 s at most), then SIGTERM it.

    Returns the lines read up to the marker, and the rest of the daemon's output.
    """
    exe = Path(sys.executable).with_name("opik-connect")
    proc = subprocess.Popen(
        [str(exe), *args],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if marker in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=20)
    return lines, rest
