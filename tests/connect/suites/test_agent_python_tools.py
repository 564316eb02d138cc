"""uv and Poetry projects: their environment runs the agent, found without either tool installed.

Fake `uv` and `poetry` executables on a tmp PATH stand in for the tools: `poetry env info -p`
prints the environment's path and exits 0, or exits 1 with no output when the project has no
environment (Poetry's own behaviour); `uv` is never run (its environment follows uv's documented
rule), and the fake proves it by recording every call.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from agent_python_testkit import make_venv, project, run

from opik_connect.connect.suites import agent_python
from opik_connect.connect.suites.agent_python import (
    OWN_INTERPRETER,
    POETRY_SOURCE,
    UV_SOURCE,
    resolve_agent_python,
)

__all__ = ["project"]

POETRY_PYPROJECT = '[tool.poetry]\nname = "bot"\nversion = "0.1.0"\n'


class FakeTools:
    """A bin directory with fake `uv` and `poetry`, each logging `cwd|args` per call."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        bin_dir.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, body: str) -> None:
        script = self.bin / name
        log = self.bin / f"{name}.calls"
        script.write_text(f'#!/bin/sh\necho "$PWD|$*" >> "{log}"\n{body}\n')
        script.chmod(0o755)

    def uv(self) -> None:
        self.add("uv", 'echo "uv 0.5.0"')

    def poetry_env(self, venv: Path) -> None:
        self.add("poetry", f"printf '%s\\n' '{venv}'")

    def poetry_without_env(self) -> None:
        self.add("poetry", "exit 1")

    def calls(self, name: str) -> list[str]:
        log = self.bin / f"{name}.calls"
        return log.read_text().splitlines() if log.is_file() else []

    @property
    def path(self) -> str:
        return f"{self.bin}{os.pathsep}{os.defpath}"


@pytest.fixture
def tools(tmp_path: Path) -> FakeTools:
    return FakeTools(tmp_path / "fakebin")


def uv_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "uv.lock").write_text("version = 1\n")
    return root


async def test_a_uv_project_uses_uv_project_environment_else_dot_venv(
    tmp_path: Path, tools: FakeTools
) -> None:
    root = uv_project(tmp_path / "p")
    tools.uv()
    env = {"PATH": tools.path, "UV_PROJECT_ENVIRONMENT": "envs/agent"}
    assert await resolve_agent_python(root, env) == (
        str(root / "envs/agent/bin/python"),
        f"{UV_SOURCE}, UV_PROJECT_ENVIRONMENT",
    )
    env["UV_PROJECT_ENVIRONMENT"] = str(tmp_path / "elsewhere")
    assert (await resolve_agent_python(root, env)).path == str(tmp_path / "elsewhere/bin/python")
    assert await resolve_agent_python(root, {"PATH": tools.path}) == (
        str(root / ".venv/bin/python"),
        f"{UV_SOURCE}, .venv",
    ), "uv's default environment, even before `uv sync` made it (the probe then says so)"
    assert tools.calls("uv") == [], "uv is never run: it could create or sync the environment"


async def test_a_uv_workspace_member_uses_the_workspace_environment(
    tmp_path: Path, tools: FakeTools
) -> None:
    """uv keeps one lock and one environment at the workspace root for all its members."""
    workspace = uv_project(tmp_path / "ws")
    (workspace / "pyproject.toml").write_text(
        '[tool.uv.workspace]\nmembers = ["packages/*"]\nexclude = ["packages/legacy"]\n'
    )
    member, legacy = workspace / "packages" / "agent", workspace / "packages" / "legacy"
    member.mkdir(parents=True)
    legacy.mkdir()
    tools.uv()
    env = {"PATH": tools.path}
    assert await resolve_agent_python(member, env) == (
        str(workspace / ".venv/bin/python"),
        f"{UV_SOURCE}, .venv, workspace {workspace}",
    )
    env["UV_PROJECT_ENVIRONMENT"] = "envs/agent"
    resolved = await resolve_agent_python(member, env)
    assert resolved.path == str(workspace / "envs/agent/bin/python"), "relative to the workspace"
    excluded = await resolve_agent_python(legacy, env)
    assert excluded.path == sys.executable and excluded.source.startswith(OWN_INTERPRETER)
    assert tools.calls("uv") == []


async def test_without_uv_on_path_a_uv_project_falls_through_and_says_why(
    tmp_path: Path,
) -> None:
    root = uv_project(tmp_path / "p")
    env = {"PATH": str(tmp_path / "nothing"), "UV_PROJECT_ENVIRONMENT": "envs/agent"}
    assert await resolve_agent_python(root, env) == (
        sys.executable,
        f"{OWN_INTERPRETER}; uv.lock found but uv is not on PATH",
    )


async def test_a_poetry_project_asks_poetry_for_its_environment(
    tmp_path: Path, tools: FakeTools
) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "pyproject.toml").write_text(POETRY_PYPROJECT)
    venv = tmp_path / "cache" / "virtualenvs" / "bot-AbCd-py3.11"
    tools.poetry_env(venv)
    assert await resolve_agent_python(root, {"PATH": tools.path}) == (
        str(venv / "bin" / "python"),
        POETRY_SOURCE,
    )
    assert tools.calls("poetry") == [f"{root}|env info -p --no-interaction"]
    (root / "pyproject.toml").write_text('[project]\nname = "bot"\n')
    (root / "poetry.lock").write_text("")
    assert (await resolve_agent_python(root, {"PATH": tools.path})).source == POETRY_SOURCE


async def test_precedence_config_then_active_then_project_venv_then_uv_then_poetry(
    tmp_path: Path, tools: FakeTools
) -> None:
    root = uv_project(tmp_path / "p")
    (root / "pyproject.toml").write_text(POETRY_PYPROJECT)
    tools.uv()
    tools.poetry_env(tmp_path / "poetry-env")
    env = {"PATH": tools.path, "UV_PROJECT_ENVIRONMENT": "uvenv"}
    assert (await resolve_agent_python(root, env)).source.startswith(UV_SOURCE)
    assert tools.calls("poetry") == [], "uv's step comes first, so Poetry is not asked"
    (root / "uv.lock").unlink()
    assert (await resolve_agent_python(root, env)).source == POETRY_SOURCE
    (root / "venv" / "bin").mkdir(parents=True)
    (root / "venv" / "bin" / "python").write_text("")
    assert (await resolve_agent_python(root, env)).source == "project venv/"
    env["VIRTUAL_ENV"] = str(tmp_path / "active")
    assert (await resolve_agent_python(root, env)).source == "$VIRTUAL_ENV"
    (root / "pyproject.toml").write_text(
        POETRY_PYPROJECT + '[tool.opik-connect]\npython = "py/bin/python"\n'
    )
    assert (await resolve_agent_python(root, env)).source == "[tool.opik-connect] python"


async def test_poetry_failing_or_hanging_falls_through_and_says_why(
    tmp_path: Path, tools: FakeTools, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "pyproject.toml").write_text(POETRY_PYPROJECT)
    tools.poetry_without_env()
    assert await resolve_agent_python(root, {"PATH": tools.path}) == (
        sys.executable,
        f"{OWN_INTERPRETER}; `poetry env info -p` exit 1: no environment",
    )
    tools.add("poetry", "echo 'Poetry could not find a pyproject.toml' >&2\nexit 1")
    assert (await resolve_agent_python(root, {"PATH": tools.path})).source.endswith(
        "exit 1: Poetry could not find a pyproject.toml"
    )
    tools.add("poetry", "exec sleep 600")
    monkeypatch.setattr(agent_python, "TOOL_TIMEOUT_S", 0.2)
    resolved = await resolve_agent_python(root, {"PATH": tools.path})
    assert resolved == (
        sys.executable,
        f"{OWN_INTERPRETER}; `poetry env info -p` did not answer within 0.2s",
    )
    assert await resolve_agent_python(root, {"PATH": str(tmp_path / "nothing")}) == (
        sys.executable,
        f"{OWN_INTERPRETER}; a Poetry project but poetry is not on PATH",
    )


def test_a_uv_environment_runs_the_suite_and_the_header_names_it(
    project: Path, tools: FakeTools, monkeypatch: pytest.MonkeyPatch
) -> None:
    uv_project(project)
    python = make_venv(project / "envs" / "agent")
    tools.uv()
    monkeypatch.setenv("PATH", f"{tools.bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("UV_PROJECT_ENVIRONMENT", "envs/agent")
    code, output = run(project)
    assert code == 0, output
    assert f"agent python {python} (uv project environment, UV_PROJECT_ENVIRONMENT" in output


def test_a_missing_uv_environment_is_exit_2_naming_the_interpreter(
    project: Path, tools: FakeTools, monkeypatch: pytest.MonkeyPatch
) -> None:
    uv_project(project)
    tools.uv()
    monkeypatch.setenv("PATH", f"{tools.bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("UV_PROJECT_ENVIRONMENT", raising=False)
    code, output = run(project)
    flat = output.replace("\n", "")
    assert code == 2, output
    assert "agent_environment" in flat and str(project / ".venv/bin/python") in flat
    assert "run `uv sync` to create it" in flat


def test_a_poetry_environment_runs_the_suite_and_a_missing_one_is_exit_2(
    project: Path, tools: FakeTools, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (project / "pyproject.toml").write_text(POETRY_PYPROJECT)
    venv = tmp_path / "virtualenvs" / "bot-AbCd-py3.11"
    python = make_venv(venv)
    tools.poetry_env(venv)
    monkeypatch.setenv("PATH", f"{tools.bin}{os.pathsep}{os.environ['PATH']}")
    code, output = run(project)
    assert code == 0, output
    assert f"agent python {python} (Poetry environment" in output
    tools.poetry_env(tmp_path / "virtualenvs" / "gone")
    code, output = run(project)
    flat = output.replace("\n", "")
    assert code == 2, output
    assert "agent_environment" in flat and str(tmp_path / "virtualenvs/gone/bin/python") in flat
    assert "run `poetry install`" in flat


def test_when_poetry_fails_the_header_says_which_step_ran_the_agent(
    project: Path, tools: FakeTools, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fall-through is visible: opik-connect's interpreter lacks the agent's dependency, and
    the error says so, naming the interpreter, the module and why Poetry's step was skipped."""
    (project / "pyproject.toml").write_text(POETRY_PYPROJECT)
    tools.poetry_without_env()
    monkeypatch.setenv("PATH", f"{tools.bin}{os.pathsep}{os.environ['PATH']}")
    code, output = run(project)
    flat = output.replace("\n", "")
    assert code == 2, output
    assert f"agent python {sys.executable} ({OWN_INTERPRETER}; `poetry env info -p` exit 1" in flat
    assert "'fuzzyhelper' is not installed" in flat
