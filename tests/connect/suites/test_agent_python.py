"""The agent runs in its own environment: found in the documented order, failures named (exit 2)."""

from __future__ import annotations

import sys
from pathlib import Path

from agent_python_testkit import make_venv, project, run

from opik_connect.connect.suites.agent_python import agent_line, resolve_agent_python

__all__ = ["project"]


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


def test_a_dependency_lacking_a_name_is_an_environment_error_but_the_trees_own_is_not(
    project: Path,
) -> None:
    python = make_venv(project / ".venv")
    main = project / "agent" / "main.py"
    main.write_text(
        main.read_text().replace("import fuzzyhelper", "from fuzzyhelper import whisper")
    )
    code, output = run(project)
    flat = output.replace("\n", "")
    assert code == 2, output
    assert "agent_environment" in flat and str(python) in flat
    assert "module 'fuzzyhelper' in the agent's interpreter" in flat
    assert "cannot import name 'whisper'" in flat
    (project / "agent" / "util.py").write_text("")
    main.write_text(main.read_text().replace("from fuzzyhelper", "from agent.util"))
    code, output = run(project)
    assert code == 1, output
    assert "failed to load" in output and "agent_environment" not in output


def test_a_missing_interpreter_is_an_environment_error(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.opik-connect]\npython = "envs/gone/bin/python"\n'
    )
    code, output = run(project)
    assert code == 2, output
    assert "agent_environment" in output and "envs/gone/bin/python" in output.replace("\n", "")


async def test_resolution_order(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "venv" / "bin").mkdir(parents=True)
    (root / "venv" / "bin" / "python").write_text("")
    assert await resolve_agent_python(root, {}) == (
        str(root / "venv/bin/python"),
        "project venv/",
    )
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").write_text("")
    assert (await resolve_agent_python(root, {})).source == "project .venv/"
    active = {"VIRTUAL_ENV": str(tmp_path / "active")}
    assert await resolve_agent_python(root, active) == (
        str(tmp_path / "active/bin/python"),
        "$VIRTUAL_ENV",
    )
    (root / "pyproject.toml").write_text('[tool.opik-connect]\npython = "tools/py"\n')
    assert await resolve_agent_python(root, active) == (
        str(root / "tools/py"),
        "[tool.opik-connect] python",
    )
    assert await resolve_agent_python(tmp_path / "empty", {}) == (
        sys.executable,
        "opik-connect's own interpreter",
    )


async def test_the_daemon_banner_line_names_the_interpreter_or_why_it_is_unusable(
    project: Path,
) -> None:
    python = make_venv(project / ".venv")
    assert await agent_line(project) == (
        f"{python} (project .venv/); opik not installed in {python}: tracing is off"
    )
    (project / "pyproject.toml").write_text('[tool.opik-connect]\npython = "envs/gone/python"\n')
    line = await agent_line(project)
    assert line.startswith(f"the agent's interpreter {project / 'envs/gone/python'} (from ")
    assert "cannot start it" in line
