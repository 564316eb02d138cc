"""The agent runs in its own environment: found in the documented order, failures named (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from suite_testkit import write_suite
from typer.testing import CliRunner

from opik_connect.cli import app
from opik_connect.connect.suites.agent_python import resolve_agent_python

AGENT = """
import opik
import fuzzyhelper

@opik.track(entrypoint=True)
def answer(question: str) -> str:
    return fuzzyhelper.shout(question)
"""


def make_venv(path: Path) -> Path:
    """A venv without pip whose site-packages holds `fuzzyhelper` (opik-connect's venv lacks it)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = next(path.glob("lib/python*/site-packages"))
    (site / "fuzzyhelper.py").write_text("def shout(text):\n    return text.upper() + '!'\n")
    return path / "bin" / "python"


@pytest.fixture
def project(tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "bot"
    (root / "agent").mkdir(parents=True)
    (root / "agent" / "__init__.py").write_text("")
    (root / "agent" / "main.py").write_text(AGENT)
    write_suite(
        root,
        "smoke",
        """
        items:
          - id: hello
            data: {question: hi}
            assertions: [{equals: "HI!"}]
        """,
    )
    for name in ("VIRTUAL_ENV", "OPIK_URL_OVERRIDE", "OPIK_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPIK_CONFIG_PATH", str(tmp_path / "none"))
    return root


def run(root: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["suite", "run", "smoke", "--root", str(root)], env={"COLUMNS": "200"}
    )
    return result.exit_code, result.output


def test_the_project_venv_runs_the_agent_and_the_header_says_so(project: Path) -> None:
    python = make_venv(project / ".venv")
    code, output = run(project)
    assert code == 0, output
    assert f"agent python {python} (project .venv/" in output
    assert f"opik not installed in {python}: tracing is off" in output


def test_a_missing_dependency_is_an_environment_error_naming_interpreter_and_module(
    project: Path,
) -> None:
    python = make_venv(project / ".venv")
    next((project / ".venv").glob("lib/python*/site-packages/fuzzyhelper.py")).unlink()
    code, output = run(project)
    assert code == 2, output
    assert "agent_environment" in output
    assert "'fuzzyhelper' is not installed" in output and str(python) in output.replace("\n", "")


def test_a_missing_interpreter_is_an_environment_error(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.opik-connect]\npython = "envs/gone/bin/python"\n'
    )
    code, output = run(project)
    assert code == 2, output
    assert "agent_environment" in output and "envs/gone/bin/python" in output.replace("\n", "")


def test_resolution_order(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "venv" / "bin").mkdir(parents=True)
    (root / "venv" / "bin" / "python").write_text("")
    assert resolve_agent_python(root, {}) == (str(root / "venv/bin/python"), "project venv/")
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").write_text("")
    assert resolve_agent_python(root, {})[1] == "project .venv/"
    active = {"VIRTUAL_ENV": str(tmp_path / "active")}
    assert resolve_agent_python(root, active) == (
        str(tmp_path / "active/bin/python"),
        "$VIRTUAL_ENV",
    )
    (root / "pyproject.toml").write_text('[tool.opik-connect]\npython = "tools/py"\n')
    assert resolve_agent_python(root, active) == (
        str(root / "tools/py"),
        "[tool.opik-connect] python",
    )
    assert resolve_agent_python(tmp_path / "empty", {}) == (
        sys.executable,
        "opik-connect's own interpreter",
    )
