"""`opik-connect suite ...`: list, show, run, add, pull and push suites.

`suite run` exits 0 when the suite passes, 1 when it fails and 2 when it cannot run (errors
follow the CLI's convention, cli_errors.py)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from opik_connect.agent.traces.store import TraceStoreError, parse_trace_document
from opik_connect.cli_errors import CliError, ConventionGroup, failed, usage_error
from opik_connect.config import ConfigError, load_opik_settings
from opik_connect.connect.suites.assertions import Assertion, describe
from opik_connect.connect.suites.last_run_view import print_last_runs
from opik_connect.connect.suites.llm_judge import judge_from_config
from opik_connect.connect.suites.run_records import latest_record
from opik_connect.connect.suites.suite_files import (
    CALL_RUN_TESTS,
    Suite,
    SuiteItem,
    list_suites,
    load_suite,
    save_suite,
    suite_path,
)
from opik_connect.connect.suites.suite_report import header_printer, progress_bar, render_summary
from opik_connect.connect.suites.suite_runner import DEFAULT_RUN_TIMEOUT_S, run_suite
from opik_connect.connect.suites.suite_transfer import (
    OpikSuiteClient,
    SuiteTransferError,
    keep_local_only,
    opik_assertions,
)
from opik_connect.protocol import BridgeError, ErrorCode

T = TypeVar("T")

suite_app = typer.Typer(
    cls=ConventionGroup,
    help="Test suites (.opik/suites/*.yaml): list, show, run, add, pull, push.",
)
RootOption = Annotated[
    Path | None,
    typer.Option("--root", help="Project root (default: nearest with .opik/ or pyproject.toml)."),
]


def _root(root: Path | None) -> Path:
    """The nearest directory up from the cwd that holds `.opik/` or a pyproject.toml."""
    if root is not None:
        if not root.is_dir():  # never create a project where the user mistyped one
            raise typer.BadParameter(f"{root} is not a directory", param_hint="'--root'")
        return root.resolve()
    cwd = Path.cwd()
    for candidate in (cwd, *cwd.parents):
        if (candidate / ".opik").is_dir() or (candidate / "pyproject.toml").is_file():
            return candidate
    return cwd


def _cannot(exc: Exception) -> CliError:
    """The suite cannot be read, run or written: exit 2, never 1 (a failed suite)."""
    code = f"[{exc.code}] " if isinstance(exc, BridgeError) else ""
    return usage_error(code + str(exc))


@suite_app.command("list")
def list_command(root: RootOption = None) -> None:
    """List the project's suites with their item counts and last result on your tree."""
    console = Console()
    base = _root(root)
    names = list_suites(base)
    if not names:
        console.print(f"no suites in {escape(str(base / '.opik' / 'suites'))}")
        return
    table = Table("suite", "items", "last run", "description")
    for name in names:
        last = latest_record(base, name)
        status = f"{last.summary.status} ({last.summary.started_at[:19]})" if last else "-"
        try:
            suite = load_suite(base, name)
        except BridgeError as exc:
            table.add_row(name, "-", status, f"[red]invalid: {escape(exc.message)}")
            continue
        table.add_row(name, str(len(suite.items)), status, escape(suite.description.strip()))
    console.print(table)


@suite_app.command("show")
def show_command(name: str, root: RootOption = None) -> None:
    """Show a suite's policy, assertions and items, then each item's last runs and trace ids."""
    console = Console()
    base = _root(root)
    try:
        suite = load_suite(base, name)
    except BridgeError as exc:
        raise _cannot(exc) from None
    policy = suite.global_execution_policy
    console.print(f"[bold]{suite.name}[/] {escape(suite.description.strip())}")
    console.print(f"runs_per_item {policy.runs_per_item}, pass_threshold {policy.pass_threshold}")
    if suite.call == CALL_RUN_TESTS:
        console.print("call: run_tests (the entrypoint gets each item's data whole, as task(data))")
    for assertion in suite.global_assertions:
        console.print(f"  global: {escape(describe(assertion))}")
    for item in suite.items:
        effective = suite.policy_for(item)
        console.print(
            f"\n[bold cyan]{escape(item.id)}[/] ({effective.pass_threshold}/"
            f"{effective.runs_per_item} runs) {escape(item.description.strip())}"
        )
        console.print(f"  data: {escape(json.dumps(item.data, ensure_ascii=False))}")
        for assertion in item.assertions:
            console.print(f"  - {escape(describe(assertion))}")
    print_last_runs(console, base, suite.name)


@suite_app.command("run")
def run_command(
    name: str,
    item: Annotated[list[str] | None, typer.Option("--item", help="Run only this item.")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the run summary here.")
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, max=64)] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds per run.")
    ] = DEFAULT_RUN_TIMEOUT_S,
    root: RootOption = None,
) -> None:
    """Run a suite on your tree. Exit 0 if it passes, 1 if it fails, 2 on error."""
    if timeout <= 0:
        raise typer.BadParameter("must be more than 0 seconds", param_hint="'--timeout'")
    console = Console()
    base = _root(root)
    try:
        judge = judge_from_config(base)
        with progress_bar(console, name) as progress:
            summary = asyncio.run(
                run_suite(
                    base,
                    name,
                    item_ids=item or None,
                    workers=workers,
                    judge=judge,
                    progress=progress,
                    run_timeout_s=timeout,
                    header=header_printer(console),
                )
            )
    except (BridgeError, ConfigError) as exc:
        raise _cannot(exc) from None
    except Exception as exc:  # anything unforeseen is still exit 2 (error), never 1 (fail)
        console.print_exception()
        raise _cannot(exc) from None
    render_summary(console, summary)
    if json_out is not None:
        try:
            json_out.write_text(summary.model_dump_json(indent=2), encoding="utf-8")
        except OSError as exc:
            raise usage_error(f"--json {json_out}: {exc.strerror or exc}") from None
    passed = f"{sum(item.passed for item in summary.items)}/{len(summary.items)} items passed"
    if summary.status == "failed":
        raise failed(f"suite {name} failed ({passed})")
    if summary.status == "error":
        raise usage_error(f"suite {name} could not run every item ({passed})")


@suite_app.command("add")
def add_command(
    name: str,
    trace: Annotated[str, typer.Option("--trace", help="A trace JSON file or a trace id.")],
    assertions: Annotated[
        list[str] | None,
        typer.Option("--assert", help="A natural-language assertion (repeatable)."),
    ] = None,
    item_id: Annotated[str | None, typer.Option("--id", help="The new item's id.")] = None,
    traces_dir: Annotated[
        Path | None,
        typer.Option("--traces-dir", help="Where trace ids are looked up (default .opik/traces)."),
    ] = None,
    root: RootOption = None,
) -> None:
    """Add an item built from a trace's input to a suite (created if missing).

    The trace is a JSON file (Opik TracePublic, bare or as {"trace", "spans"}) or an id looked up
    in --traces-dir, then on the Opik server the SDK's settings name (OPIK_*, ~/.opik.config).
    """
    console = Console()
    base = _root(root)
    try:
        trace_id, trace_input = _read_trace(trace, traces_dir or base / ".opik" / "traces")
        path = suite_path(base, name)
        suite = load_suite(base, name) if path.is_file() else Suite(name=name)
        new_item = _item_from_trace(suite, trace_id, trace_input, assertions or [], item_id)
        updated = Suite.model_validate(
            {**suite.model_dump(exclude_unset=True), "items": [*suite.items, new_item]}
        )
        written = save_suite(base, updated)
    except (BridgeError, TraceStoreError, ValueError, OSError) as exc:
        raise _cannot(exc) from None
    console.print(f"added item [bold]{escape(new_item.id)}[/] to {escape(str(written))}")


def _read_trace(reference: str, traces_dir: Path) -> tuple[str, Any]:
    path = Path(reference)
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TraceStoreError(f"{path}: not a readable trace JSON file: {exc}") from None
        document = data if isinstance(data, dict) and "trace" in data else {"trace": data}
        record = parse_trace_document(document, str(path))
    else:
        from opik_connect.agent.traces.store import TraceStore  # slow import (httpx), rarely used

        store = TraceStore.from_env(traces_dir if traces_dir.is_dir() else None)
        record = asyncio.run(store.get(reference))
    return record.trace.id, record.trace.input


def _trace_data(suite: Suite, trace_input: Any) -> dict[str, Any]:
    """An item's data from a trace's input. The SDK logs an entrypoint's arguments by name, so
    a `task(data)` entrypoint's trace reads `{"data": {...}}`: a run_tests suite takes the inner
    dict, since it passes an item's data whole."""
    if not isinstance(trace_input, dict):
        return {"input": trace_input}
    if suite.call == CALL_RUN_TESTS and len(trace_input) == 1:
        (inner,) = trace_input.values()
        if isinstance(inner, dict):
            return inner
    return trace_input


def _item_from_trace(
    suite: Suite, trace_id: str, trace_input: Any, texts: list[str], item_id: str | None
) -> SuiteItem:
    data = _trace_data(suite, trace_input)
    taken = {item.id for item in suite.items}
    wanted = item_id or "trace-" + re.sub(r"[^A-Za-z0-9]", "", trace_id)[:8]
    candidate, n = wanted, 2
    while item_id is None and candidate in taken:
        candidate, n = f"{wanted}-{n}", n + 1
    if candidate in taken:
        raise BridgeError(ErrorCode.INVALID_ARGS, f"suite {suite.name} already has item {item_id}")
    assertions: list[Assertion] = list(texts)
    return SuiteItem(
        id=candidate,
        description=f"From trace {trace_id}",
        data=data,
        assertions=assertions,
    )


@suite_app.command("pull")
def pull_command(
    name: str,
    force: Annotated[bool, typer.Option("--force", help="Replace the local file.")] = False,
    root: RootOption = None,
) -> None:
    """Write the Opik server's test suite NAME into .opik/suites/NAME.yaml.

    With --force the file is replaced, keeping what Opik cannot hold: its entrypoint and its
    deterministic assertions (on items that still exist)."""
    console = Console()
    base = _root(root)
    kept: list[str] = []
    try:
        path = suite_path(base, name)
        if path.is_file() and not force:
            raise BridgeError(ErrorCode.INVALID_ARGS, f"{path} exists; --force replaces it")
        suite = asyncio.run(_transfer(lambda client: client.pull(name)))
        if path.is_file():
            suite, kept = _keeping_local_only(suite, base, name)
        written = save_suite(base, suite)
    except (BridgeError, ConfigError, SuiteTransferError, OSError) as exc:
        raise _cannot(exc) from None
    for line in kept:
        console.print(f"[green]kept[/] {escape(line)}")
    console.print(f"pulled {len(suite.items)} item(s) into {escape(str(written))}")


def _keeping_local_only(pulled: Suite, base: Path, name: str) -> tuple[Suite, list[str]]:
    """A local file that no longer loads is replaced whole (that is what --force asked for)."""
    try:
        local = load_suite(base, name)
    except BridgeError as exc:
        return pulled, [f"nothing: the local file did not load ({exc.message})"]
    return keep_local_only(pulled, local)


@suite_app.command("push")
def push_command(
    name: str,
    nl_only: Annotated[
        bool,
        typer.Option("--nl-only", help="Leave deterministic assertions out (Opik lacks them)."),
    ] = False,
    root: RootOption = None,
) -> None:
    """Create or update the test suite NAME on the Opik server from .opik/suites/NAME.yaml."""
    console = Console()
    base = _root(root)
    try:
        suite, dropped = opik_assertions(load_suite(base, name), nl_only)
        outcome = asyncio.run(_transfer(lambda client: client.push(suite)))
    except (BridgeError, ConfigError, SuiteTransferError) as exc:
        raise _cannot(exc) from None
    for line in dropped:
        console.print(f"[yellow]left out[/] {escape(line)}")
    console.print(f"{outcome} suite [bold]{escape(name)}[/] ({len(suite.items)} item(s)) on Opik")


async def _transfer(action: Callable[[OpikSuiteClient], Awaitable[T]]) -> T:
    client = OpikSuiteClient(load_opik_settings())
    try:
        return await action(client)
    finally:
        await client.aclose()
