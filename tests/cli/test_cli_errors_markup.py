"""CLI error lines print brackets literally: a `[tool.opik-connect]` key or a `[/x]` path in a
message must neither vanish as rich markup nor crash the error report itself."""

from __future__ import annotations

import pytest
import typer

from opik_connect.cli_errors import fail


@pytest.mark.parametrize(
    "message",
    ["pyproject.toml: [tool.opik-connect] bogus: Extra inputs", "/tmp/[/x] is not a repo"],
)
def test_fail_prints_brackets_literally(message: str, capsys: pytest.CaptureFixture[str]) -> None:
    exit_ = fail(ValueError(message), debug=False)
    assert isinstance(exit_, typer.Exit)
    assert exit_.exit_code == 1
    assert capsys.readouterr().err.strip() == f"error: {message}"
