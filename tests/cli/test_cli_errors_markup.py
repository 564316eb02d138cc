"""CLI error lines print brackets literally.

CLI error lines print brackets literally: a `[tool.opik-connect]` key or a `[/x]` path in a
message must neither vanish as rich markup nor crash the error report itself.
"""

from __future__ import annotations

import pytest

from opik_connect.cli_errors import report


@pytest.mark.parametrize(
    "message",
    ["pyproject.toml: [tool.opik-connect] bogus: Extra inputs", "/tmp/[/x] is not a repo"],
)
def test_report_prints_brackets_literally(message: str, capsys: pytest.CaptureFixture[str]) -> None:
    report(message)
    captured = capsys.readouterr()
    assert captured.err.strip() == f"error: {message}" and captured.out == ""
