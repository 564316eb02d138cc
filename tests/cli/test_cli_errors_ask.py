"""`opik-connect ask` prints a failure to reach the platform as one literal line.

`opik-connect ask` prints a failure to reach the platform as one literal line, even when the
URL holds brackets rich would read as markup.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opik_connect.agent.platform.run_file import SERVER_RUN_FILE_NAME, PlatformRunFile
from opik_connect.cli import app
from opik_connect.connect.terminal.ask_client import AskError, locate_platform
from opik_connect.private_files import write_private_json

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


def test_ask_finds_the_standalone_platform_of_the_same_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the team platform's machine `ask` needs no token copied out of its run file."""
    state = tmp_path / "state"
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(state))
    monkeypatch.delenv("OPIK_CONNECT_PLATFORM", raising=False)
    monkeypatch.delenv("OPIK_CONNECT_TOKEN", raising=False)
    record = PlatformRunFile(
        url="ws://127.0.0.1:9", token="operator-token", pid=os.getpid(), started_at=0.0
    )
    write_private_json(state / SERVER_RUN_FILE_NAME, record.model_dump())
    address = locate_platform(root=None)
    assert (address.url, address.token) == ("ws://127.0.0.1:9", "operator-token")


def test_missing_token_says_where_the_platform_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("OPIK_CONNECT_TOKEN", raising=False)
    with pytest.raises(AskError) as raised:
        locate_platform("ws://127.0.0.1:9", root=None)
    assert "prints" not in str(raised.value)
    assert f"writes it to {SERVER_RUN_FILE_NAME} in its state dir" in str(raised.value)
