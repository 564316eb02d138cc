"""`suite show`'s last runs: each run of each item with its trace id, so a failed run is one
`opik-connect traces show ID` away."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from opik_connect.connect.suites.run_records import USER_TREE, RunRecord, list_records
from opik_connect.protocol import ItemResult, RunOutcome

MAX_FIX_RUNS_SHOWN = 3


def last_runs(root: Path, suite: str) -> list[RunRecord]:
    """The latest run on the user's tree, then the latest run on each fix tree (newest first,
    at most MAX_FIX_RUNS_SHOWN), as the runs a user goes from to a trace."""
    records = list_records(root, suite=suite)
    user = [r for r in records if r.summary.tree == USER_TREE]
    latest_by_tree: dict[str, RunRecord] = {}
    for record in records:
        if record.summary.tree != USER_TREE:
            latest_by_tree[record.summary.tree] = record
    fixes = sorted(latest_by_tree.values(), key=lambda r: r.summary.started_at, reverse=True)
    return ([user[-1]] if user else []) + fixes[:MAX_FIX_RUNS_SHOWN]


def _why(run: RunOutcome) -> str:
    reasons = [
        f"{v.assertion}: {v.reason}" if v.reason else v.assertion
        for v in run.assertions
        if v.status in ("failed", "error")
    ]
    if reasons:
        return reasons[0]
    lines = (run.error or "").strip().splitlines()
    return lines[-1] if lines else ""


def item_run_lines(item: ItemResult) -> list[str]:
    """One line per run: its status, its trace id (or that none was logged), why it failed."""
    lines = []
    for run in item.runs:
        trace = f"trace {run.trace_id}" if run.trace_id else "no trace logged"
        line = f"run {run.run_index + 1} {run.status:<6} {trace}"
        if run.status != "passed":
            line += f"  {_why(run)}"
        lines.append(line)
    return lines


def print_last_runs(console: Console, root: Path, suite: str) -> None:
    """Each last run with every item's runs and trace ids, then the commands that open them."""
    records = last_runs(root, suite)
    if not records:
        console.print(f"\nno runs yet: opik-connect suite run {escape(suite)}")
        return
    failed_trace: str | None = None
    for record in records:
        summary = record.summary
        tree = "your tree" if summary.tree == USER_TREE else summary.tree
        console.print(
            f"\n[bold]last run on {escape(tree)}[/]: {summary.status} "
            f"(run {summary.run_id}, {summary.started_at[:19]}, commit "
            f"{(summary.commit or '-')[:10]}, judge: {escape(summary.judge)})"
        )
        for item in summary.items:
            mark = "[green]passed[/]" if item.passed else "[red]failed[/]"
            console.print(
                f"  {escape(item.item_id)} {mark} ({item.runs_passed}/{item.runs_needed} runs)"
            )
            for line in item_run_lines(item):
                console.print(f"    {escape(line)}", soft_wrap=True)
            if failed_trace is None and not item.passed:
                failed_trace = next(
                    (r.trace_id for r in item.runs if r.status != "passed" and r.trace_id), None
                )
    traced = any(run.trace_id for r in records for i in r.summary.items for run in i.runs)
    if traced:
        console.print(
            "\na run's trace: opik-connect traces show "
            f"{failed_trace or 'TRACE_ID'}; a whole run's: opik-connect traces list --tag "
            f"suite-run:{records[0].summary.run_id}",
            soft_wrap=True,
            markup=False,
        )
