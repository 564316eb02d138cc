"""The `opik-connect demo` command: checks, set-up, the run, and its exit code."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from opik_connect.cli_errors import failed, usage_error
from opik_connect.demo.loop import run_demo
from opik_connect.demo.project_copy import STATE_ENV, DemoDirs, demo_dirs, fixtures_dir
from opik_connect.demo.scenario import DemoError
from opik_connect.git_runner import GitError
from opik_connect.protocol import BridgeError


def _interactive() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (AttributeError, OSError, ValueError):
        return False


def demo_command(
    yes: Annotated[
        bool, typer.Option("--yes", help="Approve Ollie's proposal without asking (scripts, CI).")
    ] = False,
    keep: Annotated[
        Path | None,
        typer.Option("--keep", help="Build the demo in this (new or empty) directory."),
    ] = None,
) -> None:
    """Run the whole loop on the example project: log, test, analyze, improve, validate."""
    console = Console(highlight=False)
    if not yes and not _interactive():
        raise usage_error(
            "the demo asks for your approval in a terminal, and stdin is not one; "
            "rerun with --yes to approve without asking"
        )
    try:
        fixtures = fixtures_dir()
        dirs = demo_dirs(keep)
        os.environ.setdefault(STATE_ENV, str(dirs.state))
        dirs = DemoDirs(dirs.base, dirs.project, Path(os.environ[STATE_ENV]))
        completed = asyncio.run(run_demo(dirs, fixtures, yes=yes, console=console))
    except (DemoError, GitError) as exc:
        raise usage_error(str(exc)) from None
    except BridgeError as exc:
        raise failed(f"{exc.code.value}: {exc.message}") from None
    if not completed:
        raise failed("the loop did not complete")
