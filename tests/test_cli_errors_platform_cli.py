"""`opik-connect platform` refuses bad options with one usage line before it binds anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from opik_connect.cli import app

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
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.output.strip().startswith(f"error: cannot load --tls-cert {missing}: ")
