"""While the platform cannot be reached, the daemon's reconnecting line says why."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_repo import commit_project

pytestmark = pytest.mark.timeout(40)


def test_reconnecting_line_gives_the_reason(tmp_path: Path) -> None:
    root = commit_project(tmp_path / "project", {"a.txt": "a\n"})
    with socket.socket() as probe:  # a port nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OPIK_CONNECT_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "300"}
    exe = Path(sys.executable).with_name("opik-connect")
    proc = subprocess.Popen(
        [str(exe), "--platform", f"ws://127.0.0.1:{port}"],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = ""
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "● reconnecting" not in line:
            line = proc.stdout.readline()
            if not line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert line.rstrip().endswith("s)") and "; retrying in " in line, line
    assert "Connect call failed" in line or "Connection refused" in line, line
