"""While the platform cannot be reached, the daemon's reconnecting line says why."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from cli_repo import commit_project, run_daemon_until

pytestmark = pytest.mark.timeout(40)


def test_reconnecting_line_gives_the_reason(tmp_path: Path) -> None:
    root = commit_project(tmp_path / "project", {"a.txt": "a\n"})
    with socket.socket() as probe:  # a port nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OPIK_CONNECT_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "300"}
    lines, _rest = run_daemon_until(
        root, env, "● reconnecting", "--platform", f"ws://127.0.0.1:{port}"
    )
    [line] = [line for line in lines if "● reconnecting" in line]
    assert line.rstrip().endswith("s)") and "; retrying in " in line, line
    assert "Connect call failed" in line or "Connection refused" in line, line
