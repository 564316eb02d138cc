"""Helpers for the suite tests: tiny agent projects written into tmp dirs."""

from __future__ import annotations

import subprocess
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


@pytest.fixture
def suite_env(tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Private state dir, no judge key, no Opik server: every test starts from nothing."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPIK_URL_OVERRIDE"):
        monkeypatch.delenv(name, raising=False)
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
