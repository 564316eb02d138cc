"""`opik-connect ask "…"`: ask Ollie from any terminal and watch the session as it runs.

Exit codes: 0 the session completed, 1 it ended otherwise (or the platform refused, e.g. no API
key), 2 the platform could not be found or reached (the CLI's convention, cli_errors.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from opik_connect.cli_errors import failed, usage_error
from opik_connect.connect.terminal.ask_client import AskError, ask_stream, locate_platform
from opik_connect.connect.terminal.ask_view import SessionView
from opik_connect.git_runner import NotAGitRepository, find_git_root
from opik_connect.protocol import AskRequest


def _project_root() -> Path | None:
    try:
        return find_git_root(Path.cwd())
    except NotAGitRepository:
        return None


async def run_ask(
    request: AskRequest,
    *,
    console: Console,
    platform: str | None = None,
    token: str | None = None,
    insecure: bool = False,
) -> None:
    """Stream one session to `console`; CliError unless it completed."""
    view = SessionView(console)
    try:
        address = locate_platform(platform, token, root=_project_root(), insecure=insecure)
        async for event in ask_stream(address, request):
            view.show(event)
    except AskError as exc:
        raise usage_error(str(exc)) from None
    if view.status is None:
        raise failed("the stream ended without a result")
    if not view.succeeded:
        raise failed(f"the session ended {view.status}")


def ask_command(
    question: Annotated[str, typer.Argument(help="What to ask Ollie.")],
    trace: Annotated[str | None, typer.Option("--trace", help="The failing trace's id.")] = None,
    suite: Annotated[str | None, typer.Option("--suite", help="The suite to work with.")] = None,
    case: Annotated[
        list[str] | None, typer.Option("--case", help="A test case id (repeatable).")
    ] = None,
    runner: Annotated[
        str | None, typer.Option("--runner", help="Runner id or name, if several are connected.")
    ] = None,
    platform: Annotated[
        str | None,
        typer.Option("--platform", help="Platform URL (default: the running opik-connect's)."),
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="Platform API token.", envvar="OPIK_CONNECT_TOKEN")
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow ws:// to a non-loopback host.")
    ] = False,
) -> None:
    """Ask Ollie a question; stream the session's progress and print its answer."""
    try:
        request = AskRequest(
            question=question, trace_id=trace, suite=suite, case_ids=case or [], runner=runner
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise typer.BadParameter(f"{first['loc'][0]}: {first['msg']}") from None
    asyncio.run(
        run_ask(request, console=Console(), platform=platform, token=token, insecure=insecure)
    )
