"""`opik-connect ask` prints a failure to reach the platform as one literal line, even when the
URL holds brackets rich would read as markup."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opik_connect.cli import app

pytestmark = pytest.mark.timeout(30)


def test_unreachable_platform_url_with_brackets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/[/x]"
    result = CliRunner().invoke(
        app, ["ask", "hi", "--platform", url, "--token", "t"], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "[/x]" in lines[0]
