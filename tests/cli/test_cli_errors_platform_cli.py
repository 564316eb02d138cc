"""`opik-connect platform` refuses bad options with one usage line before it binds anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from opik_connect.agent.platform import cli as platform_cli
from opik_connect.agent.platform.server import RunnerInfo
from opik_connect.cli import app
from opik_connect.protocol import PairRequest

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_out_of_range_port_is_a_usage_error(
    port: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(app, ["platform", "--port", port], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert "Invalid value for '--port'" in result.output


def test_unreadable_tls_cert_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    missing = tmp_path / "missing.pem"
    result = CliRunner().invoke(
        app, ["platform", "--port", "0", "--tls-cert", str(missing)], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert result.output.strip().startswith(f"error: cannot load --tls-cert {missing}: ")


def test_runner_names_with_brackets_are_shown_literally(monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon picks its runner name and project; neither may break the platform's terminal."""
    recorder = Console(record=True, width=300)
    monkeypatch.setattr(platform_cli, "console", recorder)
    announce = platform_cli.Announcer(json_logs=False)
    announce.pair_request(
        PairRequest(runner_id="r1", runner_name="[/x]", project="[bold]p", activation_key="k")
    )
    info = RunnerInfo(
        runner_id="r1",
        name="[/x]",
        project="[bold]p",
        connected=False,
        connected_since=None,
        last_heartbeat=None,
        root=None,
    )
    announce.runner(info)
    announce.runner(info.model_copy(update={"connected": True}))
    text = recorder.export_text()
    assert text.count("runner [/x]") == 3
    assert text.count("project [bold]p") == 2
