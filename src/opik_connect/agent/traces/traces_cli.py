"""`opik-connect traces`: list and show what agents logged to the platform, and how to log there.

`eval "$(opik-connect traces env)"` before starting an agent makes its `@opik.track` calls log to
the running platform's trace sink; `traces list` and `traces show ID` read them back over the
sink's REST API, with the same filters and the same span tree Ollie gets. With no platform
running (and none named), they read the sink's store file in the state dir instead, and say so.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console

from opik_connect.agent.traces.render import render_trace
from opik_connect.agent.traces.sink_models import TraceFilter, TraceSummary
from opik_connect.agent.traces.sink_store_sqlite import SqliteSinkStore, default_sink_path
from opik_connect.agent.traces.store import (
    OpikTraceSource,
    TraceNotFound,
    TraceStoreError,
    TraceWithSpans,
)
from opik_connect.agent.traces.trace_search import parse_since, summary_line
from opik_connect.cli_errors import ConventionGroup, failed, usage_error
from opik_connect.connect.terminal.ask_client import (
    PLATFORM_URL_ENV,
    AskError,
    PlatformAddress,
    locate_platform,
    read_json,
)
from opik_connect.git_runner import NotAGitRepository, find_git_root
from opik_connect.protocol import TraceSinkAddress

traces_app = typer.Typer(
    cls=ConventionGroup,
    help="Traces your agents logged to the platform, and how to log there.",
)
console = Console(highlight=False, soft_wrap=True)

PlatformOpt = Annotated[str | None, typer.Option("--platform", help="Platform URL (ws://…).")]
TokenOpt = Annotated[str | None, typer.Option("--token", help="Platform token.")]


T = TypeVar("T")


class TracesCliError(Exception):
    """The platform or its sink cannot be used (exit 2, like a missing platform)."""


def _root() -> Path | None:
    try:
        return find_git_root(Path.cwd())
    except NotAGitRepository:
        return None


async def sink_address(address: PlatformAddress) -> str:
    """The trace sink's base URL (the SDK's OPIK_URL_OVERRIDE), as the platform names it."""
    body = await read_json(address, "/v1/traces/sink")
    try:
        url = TraceSinkAddress.model_validate(body).base_url(address.url)
    except ValidationError:
        url = None
    if not url:
        raise TracesCliError(f"the platform at {address.url} runs no trace sink")
    return url


def env_lines(sink_url: str, token: str) -> list[str]:
    """The shell lines that point the Opik SDK at the sink."""
    return [
        f"export OPIK_URL_OVERRIDE={shlex.quote(sink_url)}",
        f"export OPIK_API_KEY={shlex.quote(token)}",
        "export OPIK_WORKSPACE=default",
    ]


async def list_traces(
    address: PlatformAddress, query: TraceFilter
) -> tuple[list[TraceSummary], int]:
    sink = await sink_address(address)
    params: dict[str, Any] = query.model_dump(mode="json", exclude_none=True)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.get(
                f"{sink}/v1/private/traces", params=params, headers={"authorization": address.token}
            )
    except httpx.HTTPError as exc:
        raise TracesCliError(f"cannot reach the trace sink at {sink}: {exc}") from exc
    if response.status_code != 200:
        raise TracesCliError(f"trace sink: HTTP {response.status_code}: {response.text[:200]}")
    body = response.json()
    return [TraceSummary.model_validate(item) for item in body["content"]], int(body["total"])


async def show_trace(address: PlatformAddress, trace_id: str) -> str:
    sink = await sink_address(address)
    record = await OpikTraceSource(sink, api_key=address.token).fetch(trace_id)
    return render_trace(record)


def _address_or_store(platform: str | None, token: str | None) -> PlatformAddress | None:
    """The running platform; None when none runs, none is named and the sink's store file is
    there to read instead."""
    try:
        return locate_platform(platform, token, root=_root())
    except AskError:
        if platform or os.environ.get(PLATFORM_URL_ENV) or not default_sink_path().is_file():
            raise
        return None


async def read_store_file(read: Callable[[SqliteSinkStore], Awaitable[T]]) -> T:
    """Read the sink's store file directly (no platform runs), saying so on stderr."""
    path = default_sink_path()
    typer.echo(f"no platform running: reading {path}", err=True)
    store = await SqliteSinkStore.open(path)
    try:
        return await read(store)
    finally:
        await store.close()


async def _stored_trace(trace_id: str) -> str:
    async def get(store: SqliteSinkStore) -> TraceWithSpans | None:
        return await store.get(trace_id)

    record = await read_store_file(get)
    if record is None:
        raise TraceNotFound(trace_id, f"in {default_sink_path()}")
    return render_trace(record)


def _run(work: Any) -> Any:
    """Exit 2 when the platform cannot be used or the input is bad; 1 for an unknown trace."""
    try:
        return asyncio.run(work)
    except TraceNotFound as exc:
        raise failed(str(exc)) from None
    except (AskError, TracesCliError, TraceStoreError, ValueError) as exc:
        raise usage_error(str(exc)) from None


@traces_app.command("env")
def env_command(platform: PlatformOpt = None, token: TokenOpt = None) -> None:
    """Print the shell lines an agent needs to log here: eval "$(opik-connect traces env)"."""

    async def work() -> list[str]:
        address = locate_platform(platform, token, root=_root())
        return env_lines(await sink_address(address), address.token)

    for line in _run(work()):
        typer.echo(line)


@traces_app.command("list")
def list_command(
    name: Annotated[str | None, typer.Option(help="Trace name contains this.")] = None,
    tag: Annotated[str | None, typer.Option(help="Trace has this tag.")] = None,
    errors: Annotated[
        bool | None, typer.Option("--errors/--no-errors", help="Only errored (or clean) traces.")
    ] = None,
    score_below: Annotated[
        float | None, typer.Option(help="A feedback score is below this value.")
    ] = None,
    score_name: Annotated[str | None, typer.Option(help="With --score-below: this score.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO time, or an age: 30m, 2h, 7d.")] = None,
    text: Annotated[str | None, typer.Option(help="Input or output contains this.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    platform: PlatformOpt = None,
    token: TokenOpt = None,
) -> None:
    """Traces logged to the platform, newest first, one line each."""

    async def work() -> tuple[list[TraceSummary], int]:
        try:
            query = TraceFilter(
                name=name,
                tag=tag,
                has_error=errors,
                score_below=score_below,
                score_name=score_name,
                since=parse_since(since) if since else None,
                text=text,
                limit=limit,
            )
        except ValidationError as exc:
            raise TracesCliError(str(exc.errors()[0]["msg"])) from exc
        address = _address_or_store(platform, token)
        if address is None:
            return await read_store_file(lambda store: store.search(query))
        return await list_traces(address, query)

    found, total = _run(work())
    for item in found:
        console.print(summary_line(item), markup=False)
    console.print(f"{len(found)} of {total} trace(s)", style="dim")


@traces_app.command("show")
def show_command(
    trace_id: Annotated[str, typer.Argument(help="The trace id (traces list shows them).")],
    platform: PlatformOpt = None,
    token: TokenOpt = None,
) -> None:
    """The trace's span tree, as Ollie sees it with get_trace."""

    async def work() -> str:
        address = _address_or_store(platform, token)
        if address is None:
            return await _stored_trace(trace_id)
        return await show_trace(address, trace_id)

    console.print(_run(work()), markup=False, end="")
