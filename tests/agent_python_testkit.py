"""The agent's own environment in tests: a project whose agent needs a module opik-connect's venv
lacks, venvs that hold it, and `suite run` through the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from suite_testkit import write_suite
from typer.testing import CliRunner

from opik_connect.cli import app

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
    for name in (
        "VIRTUAL_ENV",
        "UV_PROJECT_ENVIRONMENT",
        "OPIK_URL_OVERRIDE",
        "OPIK_API_KEY",
        "ANTHROPIC_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPIK_CONFIG_PATH", str(tmp_path / "none"))
    return root


def run(root: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["suite", "run", "smoke", "--root", str(root)], env={"COLUMNS": "200"}
    )
    return result.exit_code, result.output
