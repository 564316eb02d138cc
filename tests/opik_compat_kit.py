"""Opik's bridge-handler tests, ported: the same files in a git repo in a tmp dir, our commands
called the way Opik's are (a command name and a dict of arguments, parsed as the link parses
them), and Opik's CommandError codes compared with ours.

Opik's tests write plain files into an un-versioned tmp dir; ours commit them (`commit`), since
what the bridge may see is git's view. A ported test is named after Opik's; where we differ on
purpose, the test asserts our behaviour and its docstring starts with DELIBERATE, naming why.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from opik_connect.config import ProjectConfig
from opik_connect.connect.sandbox.read_commands import Sandbox, read_handlers
from opik_connect.link.frames import parse_model
from opik_connect.protocol import BridgeError, ErrorCode
from opik_connect.protocol.catalogue import COMMANDS


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def git_repo(tmp_path: Path) -> Path:
    """An empty git work tree, inside tmp_path (so tmp_path itself is outside the root)."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "test@test.com")
    git(root, "config", "user.name", "test")
    return root


def commit(root: Path) -> None:
    """Opik's `_git_add_commit`: everything written so far becomes tracked."""
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", "init")


async def run(
    root: Path, command: str, args: dict[str, Any], *, ripgrep: str | None = "auto"
) -> dict[str, Any]:
    """One command as the daemon serves it: arguments validated by the wire model (a bad one is
    invalid_args), then the Sandbox's handler; the result as the JSON object sent back.
    `ripgrep=None` searches through the git grep fallback."""
    sandbox = await Sandbox.open(root, ProjectConfig(), ripgrep=ripgrep)
    args_model, _ = COMMANDS[command]
    parsed = parse_model(args_model, args, ErrorCode.INVALID_ARGS)
    result = await read_handlers(sandbox)[command](parsed)
    return result.model_dump(mode="json")


async def code_of(
    root: Path, command: str, args: dict[str, Any], *, ripgrep: str | None = "auto"
) -> str:
    """The error code the command answers with (it must fail)."""
    with pytest.raises(BridgeError) as info:
        await run(root, command, args, ripgrep=ripgrep)
    return info.value.code.value
