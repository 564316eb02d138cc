"""`opik-connect suite add --trace FILE` names the file when it is not trace JSON."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from opik_connect.connect.suites.suite_cli import suite_app

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("content", [b"{bad", b"\xff\xfe\x00"])
def test_unreadable_trace_file_is_one_line_naming_it(
    content: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\n')
    trace = tmp_path / "trace.json"
    trace.write_bytes(content)
    result = CliRunner().invoke(
        suite_app,
        ["add", "qa", "--trace", str(trace), "--root", str(tmp_path)],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {trace}: not a readable trace JSON file: ")
    assert not (tmp_path / ".opik" / "suites" / "qa.yaml").exists()


def test_paths_with_brackets_print_literally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`suite list` and `suite add` name the suites dir and file as they are."""
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    root = tmp_path / "p[" / "x]"
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "p"\n')
    trace = tmp_path / "trace.json"
    trace.write_text('{"id": "01a20cc8-0000-7000-8000-000000000000", "input": {"q": "hi"}}')
    runner = CliRunner()
    listed = runner.invoke(suite_app, ["list", "--root", str(root)], env={"COLUMNS": "300"})
    assert listed.exit_code == 0, listed.output
    assert listed.output.strip() == f"no suites in {root / '.opik' / 'suites'}"
    added = runner.invoke(
        suite_app,
        ["add", "qa", "--trace", str(trace), "--root", str(root)],
        env={"COLUMNS": "300"},
    )
    assert added.exit_code == 0, added.output
    assert added.output.strip().endswith(f"to {root / '.opik' / 'suites' / 'qa.yaml'}")


@pytest.mark.parametrize("command", [["list"], ["show", "qa"], ["run", "qa"], ["add", "qa"]])
def test_missing_root_is_refused_and_not_created(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    trace = tmp_path / "trace.json"
    trace.write_text('{"id": "01a20cc8-0000-7000-8000-000000000000", "input": {"q": "hi"}}')
    missing = tmp_path / "missing"
    extra = ["--trace", str(trace)] if command[0] == "add" else []
    result = CliRunner().invoke(
        suite_app, [*command, *extra, "--root", str(missing)], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 2
    assert f"Invalid value for '--root': {missing} is not a directory" in result.output
    assert not missing.exists()


def test_unwritable_suites_dir_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    root = tmp_path / "project"
    root.mkdir()
    (root / ".opik").write_text("a file where the suites directory should go")
    trace = tmp_path / "trace.json"
    trace.write_text('{"id": "01a20cc8-0000-7000-8000-000000000000", "input": {"q": "hi"}}')
    result = CliRunner().invoke(
        suite_app, ["add", "qa", "--trace", str(trace), "--root", str(root)], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert ".opik" in lines[0]
