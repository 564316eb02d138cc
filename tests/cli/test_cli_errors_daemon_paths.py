"""The daemon's banner prints a project path holding brackets as is.

The daemon serves a project whose path holds brackets: its banner prints the path as is
instead of failing on it as rich markup.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_repo import commit_project, run_daemon_until

pytestmark = pytest.mark.timeout(40)


def test_daemon_banner_in_a_bracketed_directory(tmp_path: Path) -> None:
    root = tmp_path / "p[" / "x]"  # the path holds "[/x]", a closing tag to rich
    commit_project(root, {"a.txt": "a\n"})
    env = {**os.environ, "OPIK_CONNECT_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "300"}
    env.pop("ANTHROPIC_API_KEY", None)
    lines, rest = run_daemon_until(root, env, "connected (")
    output = "".join(lines) + rest
    assert f"  root      {root}" in output, output
    assert "MarkupError" not in output
    assert "● connected (" in output
