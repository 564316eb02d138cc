"""`opik-connect demo --keep DIR` refuses a directory it cannot create as one error line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from opik_connect.cli import app

pytestmark = pytest.mark.timeout(30)


def test_keep_dir_that_cannot_be_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    keep = blocker / "demo"
    result = CliRunner().invoke(app, ["demo", "--yes", "--keep", str(keep)], env={"COLUMNS": "300"})
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)
    assert result.output.strip() == f"error: --keep {keep}: Not a directory"


@pytest.mark.timeout(90)
def test_demo_in_a_bracketed_keep_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths holding "[/x]" are printed as they are, not parsed as rich markup."""
    state = tmp_path / "s[" / "x]"
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(state))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    keep = tmp_path / "k[" / "x]"
    result = CliRunner().invoke(app, ["demo", "--yes", "--keep", str(keep)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output[-2000:]
    assert f"project  {keep / 'project'}  (" in result.output
    assert f"state    {state}  (" in result.output
