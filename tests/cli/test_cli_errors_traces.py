"""`opik-connect traces` without a platform or with bad filters: one error line, exit 2 (the
convention's usage and environment code); and the env lines quote what a shell would split."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from opik_connect.agent.traces.traces_cli import env_lines
from opik_connect.cli import app


@pytest.fixture(autouse=True)
def no_platform(state_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OPIK_CONNECT_PLATFORM", raising=False)
    monkeypatch.delenv("OPIK_CONNECT_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("args", [["env"], ["list"], ["show", "t1"]])
def test_no_running_platform_is_one_error_line(args: list[str]) -> None:
    result = CliRunner().invoke(app, ["traces", *args])
    assert result.exit_code == 2
    assert "no running platform found" in result.output


def test_a_bad_since_is_named() -> None:
    result = CliRunner().invoke(app, ["traces", "list", "--since", "yesterday"])
    assert result.exit_code == 2
    assert "since: 'yesterday' is neither ISO 8601 nor an age like 2h or 7d" in result.output


def test_env_lines_are_shell_quoted() -> None:
    assert env_lines("http://127.0.0.1:5/api", "a b'c") == [
        "export OPIK_URL_OVERRIDE=http://127.0.0.1:5/api",
        "export OPIK_API_KEY='a b'\"'\"'c'",
        "export OPIK_WORKSPACE=default",
    ]
