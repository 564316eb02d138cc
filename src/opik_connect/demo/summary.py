"""The demo's verdict: whether the loop completed, the summary panel and the review commands."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from rich.console import Console, Group
from rich.markdown import Markdown
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from opik_connect.demo.project_copy import STATE_ENV, DemoDirs
from opik_connect.demo.scenario import DRAFTED_ITEM, SUITE, Outcome
from opik_connect.git_runner import run_async
from opik_connect.protocol import SuiteRunSummary


def _items(run: SuiteRunSummary) -> str:
    return f"{sum(item.passed for item in run.items)}/{len(run.items)} items passed"


def loop_problems(outcome: Outcome, *, tree_changed: bool) -> list[str]:
    """Why the loop did not complete, in the user's words; empty when it did."""
    problems = []
    before, after, proposal = outcome.before, outcome.after, outcome.proposal
    if outcome.session_status != "completed":
        problems.append(f"Ollie's session ended {outcome.session_status or 'without a result'}")
    if before is None or before.status != "failed":
        status = before.status if before else "not run"
        problems.append(f"the suite did not fail on your tree before the fix ({status})")
    if proposal is not None and proposal.status == "rejected":
        problems.append(
            "you rejected the proposal, so no fix branch was built; run the demo again and "
            "press y to see the rest of the loop"
        )
    elif proposal is None or proposal.status != "applied" or not proposal.branch:
        status = proposal.status if proposal else "none was made"
        problems.append(f"no fix branch was built (proposal: {status})")
    elif after is None or after.status != "passed":
        status = after.status if after else "not run"
        problems.append(f"the suite did not pass on the fix branch ({status})")
    if tree_changed:
        problems.append("your tree changed (the demo must never change it)")
    return problems


ANALYZE_TOOLS = ("get_trace", "search_traces", "compare_traces", "list_spans", "get_span")


def _who(outcome: Outcome) -> str:
    return "Ollie (scripted)" if outcome.scripted else "Ollie (real model)"


def step_lines(outcome: Outcome) -> list[tuple[str, str]]:
    """The five steps in the loop's order, each with what did it in this run."""
    proposal, before = outcome.proposal, outcome.before
    tools = outcome.tools
    read = [t for t in dict.fromkeys(tools) if t in (*ANALYZE_TOOLS, "read_file", "search_files")]
    analyze = f"{_who(outcome)}: {', '.join(read) or 'no tool'}"
    analyze += (
        "; it compared the failing trace with a successful one of the same kind"
        if "compare_traces" in tools
        else "; it did not compare traces"
    )
    drafted = proposal is not None and any(
        case == DRAFTED_ITEM for case in proposal.args.test_case_ids
    )
    if "draft_test_case" in tools:
        test = f"draft_test_case by {_who(outcome)}: the trace became item {DRAFTED_ITEM}"
        test += ", shipped in the proposal" if drafted else ", left out of the proposal"
    else:
        test = f"{_who(outcome)} drafted no test case"
    if before is not None:
        test += f"; the daemon ran suite {SUITE} on your tree: {before.status} ({_items(before)})"
    improve = f"propose_change by {_who(outcome)}"
    if proposal is not None:
        decided = proposal.decided_by or "nobody"
        improve += f": {len(proposal.files)} file(s), {proposal.status} (decided by {decided})"
    check = proposal.verification if proposal is not None else None
    validate = (
        f"the daemon, before you were asked: {check.summary}"
        if check is not None
        else "the daemon did not verify the proposal"
    )
    return [
        ("log", f"{outcome.logged_by or 'nothing logged'} → the platform's trace sink"),
        ("analyze", analyze),
        ("test", test),
        ("improve", improve),
        ("validate", validate),
    ]


async def summarize(dirs: DemoDirs, head: str, outcome: Outcome, console: Console) -> bool:
    console.print()
    console.rule("[bold cyan]summary[/]", align="left")
    before, after, proposal = outcome.before, outcome.after, outcome.proposal
    user_head = (await run_async(dirs.project, "rev-parse", "HEAD")).text
    dirty = (await run_async(dirs.project, "status", "--porcelain")).text
    outcome.problems.extend(loop_problems(outcome, tree_changed=user_head != head or bool(dirty)))
    ok = not outcome.problems
    parts: list[Text | Markdown] = []
    if outcome.final_answer:
        parts.append(Text("cause (Ollie's answer)", style="bold"))
        parts.append(Markdown(outcome.final_answer.strip().split("\n\n")[0]))
        parts.append(Text())
    facts = Text()
    for name, line in step_lines(outcome):
        facts.append(f"{name:<10} ", style="bold cyan")
        facts.append(f"{line}\n")
    facts.append("\n")
    if proposal is not None and proposal.branch:
        facts.append("branch     ", style="bold")
        facts.append(f"{proposal.branch} (commit {(proposal.commit or '')[:10]})\n")
    if before is not None:
        facts.append("suite      ", style="bold")
        facts.append(f"{SUITE}: ")
        facts.append(f"{before.status} ({_items(before)})", style="red")
        facts.append(" → ")
        if after is not None:
            facts.append(f"{after.status} ({_items(after)})", style="green")
        else:
            facts.append("not rerun", style="red")
        facts.append("\n")
    check = proposal.verification if proposal is not None else None
    if check is not None and proposal is not None and proposal.commit == check.commit:
        facts.append("validated  ", style="bold")
        facts.append("the fix branch is the verified build (no second suite run)\n")
    facts.append("your tree  ", style="bold")
    facts.append(f"{dirs.project} unchanged (main at {head[:10]}, clean)\n")
    facts.append("records    ", style="bold")
    facts.append(
        f"{dirs.state / 'platform.sqlite3'} ({outcome.recorded}); transcripts in "
        f"{dirs.state / 'transcripts'}"
    )
    parts.append(facts)
    console.print(
        Panel(
            Group(*parts),
            title="[bold green]the loop completed[/]"
            if ok
            else "[bold red]the loop did not complete[/]",
            border_style="green" if ok else "red",
        )
    )
    if proposal is not None and proposal.branch:
        console.print("[bold]review the fix:[/]")
        for command in (
            f"cd {dirs.project}",
            f"{STATE_ENV}={dirs.state} {_cli_name()} fixes show {proposal.id}",
            f"git -C {dirs.project} diff main...{proposal.branch}",
            f"git -C {dirs.project} log -1 {proposal.branch}",
        ):
            console.print(f"  {command}", soft_wrap=True, markup=False)
    if outcome.trace_id:
        console.print("[bold]the logged traces:[/]")
        for command in (
            f"{STATE_ENV}={dirs.state} {_cli_name()} traces list --tag production",
            f"{STATE_ENV}={dirs.state} {_cli_name()} traces show {outcome.trace_id}",
        ):
            console.print(f"  {command}", soft_wrap=True, markup=False)
    for problem in outcome.problems:
        console.print(f"[red]error:[/] {escape(problem)}", highlight=False)
    return ok


def _cli_name() -> str:
    """`opik-connect` when the shell finds it, else its full path (a venv not activated)."""
    here = Path(sys.executable).with_name("opik-connect")
    found = shutil.which("opik-connect")
    if found is not None or not here.exists():
        return "opik-connect"
    return str(here)
