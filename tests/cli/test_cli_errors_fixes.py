"""`fixes`, `approve` and `reject` report bad config or input as one error line.

`fixes`, `approve` and `reject` report a broken project config or odd input as one error
line with a non-zero exit, never a traceback.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opik_connect.cli import app

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    root = tmp_path / "project"
    root.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    return root


def run(root: Path, *args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, [*args, "--root", str(root)], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout + result.stderr, result.exception


@pytest.mark.parametrize("args", [["fixes", "show", "[/x]"], ["approve", "[bold]y"]])
def test_unknown_id_with_brackets_is_printed_literally(project: Path, args: list[str]) -> None:
    code, output, exc = run(project, *args)
    assert code == 2
    assert isinstance(exc, SystemExit)
    assert output.strip() == f"error: proposal_not_found: no proposal '{args[-1]}'"


@pytest.mark.parametrize("args", [["fixes"], ["fixes", "show", "x"], ["approve", "x"]])
def test_malformed_config_is_one_error_line(project: Path, args: list[str]) -> None:
    (project / "pyproject.toml").write_text("[tool.opik-connect]\nbogus = 1\n")
    code, output, exc = run(project, *args)
    assert code == 2
    assert isinstance(exc, SystemExit)
    assert output.strip() == (
        f"error: {project / 'pyproject.toml'}: "
        "[tool.opik-connect] bogus: Extra inputs are not permitted"
    )


@pytest.mark.parametrize("args", [["fixes"], ["fixes", "merge", "x"], ["reject", "x"]])
def test_root_that_is_not_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    missing = tmp_path / "missing"
    code, output, exc = run(missing, *args)
    assert code == 2
    assert isinstance(exc, SystemExit)
    assert output.strip() == f"error: {missing} is not a directory"
