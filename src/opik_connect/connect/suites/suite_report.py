"""How a suite run looks in the terminal: a rich progress bar while it runs, a table after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from opik_connect.connect.suites.suite_runner import (
    NO_JUDGE,
    HeaderCallback,
    ProgressCallback,
    RunProgress,
    item_inconclusive,
)
from opik_connect.protocol import ItemResult, SuiteRunSummary

_STATUS_STYLE = {"passed": "bold green", "failed": "bold red", "error": "bold yellow"}


@contextlib.contextmanager
def progress_bar(console: Console, title: str) -> Iterator[ProgressCallback]:
    """A live bar; the yielded callback is what run_suite's `progress` wants."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failures]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(title, total=None, failures="")
        failures = 0

        def update(event: RunProgress) -> None:
            nonlocal failures
            failures += event.status != "passed"
            bar.update(
                task,
                completed=event.done,
                total=event.total,
                failures=f"[red]{failures} not passed" if failures else "",
            )

        yield update


def header_printer(console: Console) -> HeaderCallback:
    """Print a run's header lines (interpreter, tracing) dimmed, before the progress bar."""

    def show(lines: list[str]) -> None:
        for line in lines:
            console.print(f"[dim]{escape(line)}")

    return show


def no_judge_notice(console: Console) -> None:
    console.print(
        Panel(
            "No judge: ANTHROPIC_API_KEY is not set, so natural-language assertions are "
            "[bold]skipped[/bold] (they do not fail a run). Deterministic assertions still ran.",
            title="[bold yellow]natural-language assertions NOT judged",
            border_style="yellow",
        )
    )


def render_summary(
    console: Console, summary: SuiteRunSummary, first_items: list[str] | None = None
) -> None:
    """Per item: runs passed/needed, and every failed or undecided assertion with its reason."""
    named = set(first_items or [])
    table = Table(title=f"suite {summary.suite} on {summary.tree}", show_lines=True)
    table.add_column("item", style="bold")
    table.add_column("runs", justify="right")
    table.add_column("result")
    table.add_column("what went wrong")
    ordered = sorted(summary.items, key=lambda i: i.item_id not in named)
    for item in ordered:
        label = escape(item.item_id) + (
            " [cyan](named by the fix)" if item.item_id in named else ""
        )
        table.add_row(label, f"{item.runs_passed}/{item.runs_needed}", _verdict(item), _why(item))
    console.print(table)
    skipped = sum(
        a.status == "skipped" for i in summary.items for r in i.runs for a in r.assertions
    )
    if summary.judge == NO_JUDGE and skipped:
        no_judge_notice(console)
    style = _STATUS_STYLE[summary.status]
    passed = sum(i.passed for i in summary.items)
    console.print(
        f"[{style}]{summary.status.upper()}[/] {passed}/{len(summary.items)} items passed in "
        f"{summary.duration_s:.1f}s (judge: {summary.judge}, commit: "
        f"{(summary.commit or 'none')[:10]}, run {summary.run_id})"
    )


def _verdict(item: ItemResult) -> str:
    if item.passed:
        return "[green]passed"
    return "[yellow]inconclusive" if item_inconclusive(item) else "[red]failed"


def _why(item: ItemResult, limit: int = 6) -> str:
    """Each distinct problem once, with the runs it happened in."""
    runs_by_problem: dict[str, list[int]] = {}
    for run in item.runs:
        if run.status == "passed":
            continue
        problems = [_first_line(run.error)] if run.error else []
        problems += [
            f"{v.status} {v.assertion} - {v.reason}"
            for v in run.assertions
            if v.status in ("failed", "error")
        ]
        for problem in problems:
            runs_by_problem.setdefault(problem, []).append(run.run_index + 1)
    lines = [
        f"run{'s' if len(runs) > 1 else ''} {','.join(map(str, runs))}: {escape(problem)}"
        for problem, runs in runs_by_problem.items()
    ]
    if len(lines) > limit:
        lines = [*lines[:limit], f"... {len(lines) - limit} more"]
    return "\n".join(lines)


def _first_line(error: str) -> str:
    """The exception line of a traceback, or the headline of a crash or timeout; a headline
    followed by a traceback (an entrypoint that fails to load) keeps the exception line too."""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    if lines and lines[0].startswith("Traceback"):
        return lines[-1]
    if len(lines) > 2 and lines[1].startswith("Traceback"):
        return f"{lines[0]} {lines[-1]}"
    return lines[0] if lines else error
