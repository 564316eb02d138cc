"""Helpers for the suite tests: tiny agent projects written into tmp dirs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

AGENT = """
import json, os, sys, time
from opik import track

@track(entrypoint=True)
def answer(question: str = "", mode: str = "ok", sleep: float = 0.0, **extra):
    started = time.time()
    print("agent chatter on stdout", flush=True)
    if mode == "crash":
        os._exit(3)
    if mode == "raise":
        raise RuntimeError("the agent broke: " + question)
    if mode == "hang":
        time.sleep(600)
    if mode == "plain":
        return "plain " + question
    if mode == "timing":
        time.sleep(sleep)
        return {"output": {"started": started, "ended": time.time(), "pid": os.getpid()}}
    time.sleep(sleep)
    return {"output": "{VERSION} answer to " + question, "started": started,
            "ended": time.time(), "pid": os.getpid(), "meta": {"tags": ["a", "b"], "n": 3}}
"""


_BARE_VENV: list[Path] = []


def bare_agent_venv(factory: pytest.TempPathFactory) -> Path:
    """A venv with nothing installed (no opik), made once per session: the agents of these tests
    run in it, as in a user's own venv, without paying for the real SDK's import."""
    if not _BARE_VENV:
        path = factory.mktemp("agent-venv")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
        _BARE_VENV.append(path)
    return _BARE_VENV[0]


@pytest.fixture
def suite_env(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """Private state dir, no judge key, no Opik server, the agent in a bare venv (the active
    $VIRTUAL_ENV): every test starts from nothing."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPIK_URL_OVERRIDE", "OPIK_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPIK_CONFIG_PATH", str(tmp_path / "no-opik.config"))
    monkeypatch.setenv("VIRTUAL_ENV", str(bare_agent_venv(tmp_path_factory)))
    return tmp_path


def write_agent(tree: Path, version: str = "tree", package: str = "agentpkg") -> Path:
    (tree / package).mkdir(parents=True, exist_ok=True)
    (tree / package / "__init__.py").write_text("")
    path = tree / package / "agent.py"
    path.write_text(AGENT.replace("{VERSION}", version))
    return path


def write_suite(tree: Path, name: str, body: str) -> Path:
    path = tree / ".opik" / "suites" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body).lstrip())
    return path


def make_project(tmp_path: Path, suite: str, name: str = "s", version: str = "tree") -> Path:
    root = tmp_path / "proj"
    write_agent(root, version)
    write_suite(root, name, suite)
    return root


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()
