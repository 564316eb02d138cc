"""`opik-connect transcript FILE` refuses a file that is not a transcript with one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from opik_connect.cli import app


@pytest.mark.parametrize("content", [b"garbage\n", b"\xff\xfe\x00\n", b"[1]\n", b'"text"\n'])
def test_not_a_transcript_is_one_line(
    content: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "t.jsonl"
    path.write_bytes(content)
    result = CliRunner().invoke(app, ["transcript", str(path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {path}: not an Ollie transcript (")
