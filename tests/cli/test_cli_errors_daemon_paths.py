"""The daemon serves a project whose path holds brackets: its banner prints the path as is
instead of failing on it as rich markup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_repo import commit_project

pytestmark = pytest.mark.timeout(40)


def test_daemon_banner_in_a_bracketed_directory(tmp_path: Path) -> None:
    root = tmp_path / "p[" / "x]"  # the path holds "[/x]", a closing tag to rich
    commit_project(root, {"a.txt": "a\n"})
    env = {**os.environ, "OPIK_CONNECT_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "300"}
    env.pop("ANTHROPIC_API_KEY", None)
    exe = Path(sys.executable).with_name("opik-connect")
    proc = subprocess.Popen(
        [str(exe)],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "connected (" in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=20)
    output = "".join(lines) + rest
    assert f"  root      {root}" in output, output
    assert "MarkupError" not in output
    assert "● connected (" in output
