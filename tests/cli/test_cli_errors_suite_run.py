"""`opik-connect suite run` reports load failures and an unwritable --json path clearly.

`opik-connect suite run` says why an entrypoint failed to load, not only that it did, and
reports an unwritable --json path as one error line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_repo import commit_project
from typer.testing import CliRunner

from opik_connect.connect.suites.suite_cli import suite_app

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A committed one-item suite whose entrypoint names a function the module lacks."""
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    return commit_project(
        tmp_path / "project",
        {
            "agent/__init__.py": "",
            "agent/main.py": "def answer(question):\n    return question\n",
            "pyproject.toml": (
                '[project]\nname = "p"\n\n[tool.opik-connect]\nentrypoint = "agent.main:missing"\n'
            ),
            ".opik/suites/qa.yaml": (
                "name: qa\nitems:\n- id: one\n  data: {question: hi}\n"
                "  assertions: [{contains: hi}]\n"
            ),
        },
    )


def test_entrypoint_load_failure_shows_the_exception(project: Path) -> None:
    result = CliRunner().invoke(
        suite_app, ["run", "qa", "--root", str(project)], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 1
    assert "entrypoint agent.main:missing failed to load: AttributeError" in result.output
    assert "missing" in result.output.split("AttributeError", 1)[1]


def test_unwritable_json_path_is_one_error_line(project: Path, tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / "run.json"
    result = CliRunner().invoke(
        suite_app,
        ["run", "qa", "--json", str(target), "--root", str(project)],
        env={"COLUMNS": "400"},
    )
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        f"error: --json {target}: No such file or directory"
    )


@pytest.mark.parametrize("timeout", ["0", "-5"])
def test_non_positive_timeout_is_a_usage_error(project: Path, timeout: str) -> None:
    """A zero timeout would fail every item as if the agent were broken."""
    result = CliRunner().invoke(
        suite_app,
        ["run", "qa", "--timeout", timeout, "--root", str(project)],
        env={"COLUMNS": "400"},
    )
    assert result.exit_code == 2
    assert "Invalid value for '--timeout': must be more than 0 seconds" in result.output
    assert "items passed" not in result.output
