"""`opik-connect fixes ...`, `opik-connect approve ID` and `opik-connect reject ID`.

These work from any terminal, with or without a running daemon: the journal is the source of
truth and its lock serialises decisions. A decision made here is journaled undelivered; the
daemon's outbox task sends the ProposalDecided (after rerunning the suite on the fix branch).
"""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax

from opik_connect.cli_errors import CliError, ConventionGroup, failed, usage_error
from opik_connect.connect.fixes.branches import FixError, FixSummary
from opik_connect.connect.proposals.journal import JournaledProposal
from opik_connect.connect.proposals.service import ProposalService
from opik_connect.connect.suites.run_records import before_after
from opik_connect.connect.terminal.visible_text import visible
from opik_connect.git_runner import find_git_root
from opik_connect.protocol import BridgeError, ErrorCode, FileStat, SuiteRunSummary

fixes_app = typer.Typer(
    cls=ConventionGroup,
    help="Fix branches made from approved proposals.",
    invoke_without_command=True,
)
console = Console(highlight=False)

RootOption = typer.Option(Path("."), "--root", help="A directory inside the project's git repo.")


def _service(root: Path) -> ProposalService:
    """The project's proposals (keyed on the git top level, as the daemon keys them), with any
    apply a crash interrupted settled first."""
    service = ProposalService.for_project(find_git_root(root))
    service.recover_interrupted()
    return service


def _refused(exc: BridgeError) -> CliError:
    """An unknown id is a usage error; a proposal in the wrong state, a refused outcome."""
    message = f"{exc.code.value}: {exc.message}"
    return usage_error(message) if exc.code is ErrorCode.PROPOSAL_NOT_FOUND else failed(message)


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def decider(rec: JournaledProposal) -> str:
    """Who decided, as the user would name it: the daemon's terminal prompt, the CLI command
    (approve or reject, from any terminal), --auto-approve; other deciders as recorded."""
    if rec.decided_by == "cli":
        return "CLI (opik-connect " + ("reject)" if rec.status == "rejected" else "approve)")
    if rec.decided_by == "auto-approve":
        return "auto-approve (daemon --auto-approve)"
    return rec.decided_by or "-"


def _get(service: ProposalService, proposal_id: str) -> JournaledProposal:
    try:
        return service.get(proposal_id)
    except BridgeError as exc:
        raise _refused(exc) from None


def _items_passed(run: SuiteRunSummary) -> str:
    return f"{sum(item.passed for item in run.items)}/{len(run.items)} items passed"


def _suite_cell(fix: FixSummary) -> str:
    if fix.latest_suite is None:
        return "-"
    run = fix.latest_suite
    return f"{escape(run.suite)}: {run.status} ({_items_passed(run)})"


def fix_status_text(status: str, branch_deleted: bool) -> str:
    """A merged fix stays `merged` once its branch is deleted; `dropped` means never merged."""
    return f"{status}, branch deleted" if status == "merged" and branch_deleted else status


def _fix_status(rec: JournaledProposal) -> str:
    return fix_status_text(rec.fix_status or "", rec.branch_deleted)


def _branch_cell(fix: FixSummary) -> str:
    if not fix.commit:
        return "-"
    return escape(fix.branch) + (" (deleted)" if fix.branch_deleted else "")


def _file_change(stat: FileStat) -> str:
    return f"{stat.path} (+{stat.added} \u2212{stat.removed})"


Block = tuple[str, str, list[tuple[str, str]]]
"""One record as fixes_list prints it: id, title, then labelled values."""


def _pending_block(rec: JournaledProposal) -> Block:
    return (
        rec.id,
        rec.args.title,
        [
            ("created", _when(rec.created)),
            ("files", escape(", ".join(_file_change(f) for f in rec.files))),
            ("trace", escape(rec.args.trace_id or "-")),
        ],
    )


def _fix_block(fix: FixSummary) -> Block:
    return (
        fix.id,
        fix.title,
        [
            ("branch", _branch_cell(fix)),
            ("trace", escape(fix.trace_id or "-")),
            ("created", _when(fix.created)),
            ("status", fix_status_text(fix.status, fix.branch_deleted)),
            ("suite", _suite_cell(fix)),
        ],
    )


def _print_blocks(blocks: list[Block], none: str) -> None:
    """One block per record (id and title, then one labelled value a line), not a table: seven
    columns with a 36-character trace id and a long branch cannot share 80 columns, and rich
    squeezed them to nothing. Lines soft-wrap, so a branch or path is never cut or folded."""
    if not blocks:
        console.print(none)
    for number, (record_id, title, fields) in enumerate(blocks):
        if number:
            console.print()
        console.print(f"[bold]{escape(record_id)}[/bold]  {escape(visible(title))}", soft_wrap=True)
        for label, value in fields:
            console.print(f"  {label:<8} {visible(value)}", soft_wrap=True)


@fixes_app.callback()
def fixes_list(
    ctx: typer.Context,
    pending: bool = typer.Option(False, "--pending", help="List undecided proposals instead."),
    root: Path = RootOption,
) -> None:
    """List fix branches (or, with --pending, proposals waiting for a decision)."""
    if ctx.invoked_subcommand is not None:
        return
    service = _service(root)
    if pending:
        _print_blocks([_pending_block(rec) for rec in service.pending()], "No proposals waiting.")
    else:
        _print_blocks([_fix_block(fix) for fix in service.fix_summaries()], "No fixes yet.")


@fixes_app.command("show")
def fixes_show(proposal_id: str, root: Path = RootOption) -> None:
    """Show a fix (or proposal): its record, its diff and its suite runs."""
    service = _service(root)
    rec = _get(service, proposal_id)
    fix = FixSummary.from_proposal(rec)
    rows = [
        ("id", rec.id),
        ("title", rec.args.title),
        ("status", f"{rec.status}" + (f" / {_fix_status(rec)}" if rec.fix_status else "")),
        ("branch", (rec.branch or "-") + (" (deleted)" if rec.branch_deleted else "")),
        ("commit", rec.commit or "-"),
        ("worktree", rec.worktree or "-"),
        ("base", rec.base_head or "-"),
        ("trace", rec.args.trace_id or "-"),
        ("test cases", ", ".join(rec.args.test_case_ids) or "-"),
        ("suite", rec.args.suite or "-"),
        ("created", _when(rec.created)),
        ("decided", f"{_when(rec.decided_at)} by {decider(rec)}" if rec.decided_at else "-"),
        ("note", rec.reason or "-"),
        ("delivered", "yes" if rec.delivered else "no"),
    ]
    for key, value in rows:
        console.print(f"[bold]{key:>11}[/bold]  {escape(value)}")
    console.print(f"\n{escape(rec.args.reason.strip())}\n")
    console.print(Syntax(rec.diff, "diff", theme="ansi_dark", background_color="default"))
    if fix.commit:
        _print_suite_runs(service.root, rec)


def _print_suite_runs(root: Path, rec: JournaledProposal) -> None:
    """Each suite run on the fix branch (after) beside the latest run of the same suite on the
    user's tree that preceded it (before), as the run records hold them."""
    pairs = before_after(root, branch=rec.branch) if rec.branch else []
    if not pairs:
        console.print("No suite runs.")
        return
    console.print("[bold]suite runs[/bold]  before (your tree) \u2192 after (the fix branch)")
    for pair in pairs:
        before = pair.before.summary if pair.before else None
        after = pair.after.summary
        was = f"{before.status} ({_items_passed(before)})" if before else "no run"
        console.print(
            f"  {escape(pair.suite)}: {was} \u2192 {after.status} ({_items_passed(after)})",
            soft_wrap=True,
        )
        if before is None:
            console.print("    before  no run of this suite on your tree before the fix")
        else:
            dirty = " (uncommitted changes)" if pair.before.dirty else ""
            _print_run("before", before, f"your tree{dirty}")
        _print_run("after", after, "the fix branch")


def _print_run(label: str, run: SuiteRunSummary, where: str) -> None:
    started = _started(run.started_at)
    commit = f" at {run.commit[:10]}" if run.commit else ""
    console.print(
        f"    {label:<6}  {run.status}  {_items_passed(run)}  {started}  {run.duration_s:.1f}s"
    )
    console.print(f"            run {escape(run.run_id)} on {where}{commit}", soft_wrap=True)


def _started(iso: str) -> str:
    try:
        moment = datetime.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return _when(moment.timestamp())


def _fix_record(service: ProposalService, proposal_id: str) -> JournaledProposal:
    rec = _get(service, proposal_id)
    if rec.status != "applied" or rec.branch is None:
        raise failed(f"proposal {rec.id} is {rec.status}; it has no fix branch")
    return rec


@fixes_app.command("merge")
def fixes_merge(
    proposal_id: str,
    ff: bool = typer.Option(
        False,
        "--ff",
        help="Fast-forward when the current branch has not moved since the fix was made; "
        "otherwise make a merge commit, as without --ff.",
    ),
    root: Path = RootOption,
) -> None:
    """Merge a fix branch into the current branch (refuses on a dirty tree or a conflict)."""
    service = _service(root)
    rec = _fix_record(service, proposal_id)
    try:
        merged = service.fixes.merge(rec, fast_forward=ff)
    except FixError as exc:
        raise failed(f"not merged: {exc}") from None
    service.journal.update(rec.id, lambda r: setattr(r, "fix_status", "merged"))
    if merged == rec.commit:
        how = "fast-forward"
    else:
        how = "merge commit" + ("; a fast-forward was not possible" if ff else "")
    console.print(f"Merged {rec.branch} ({merged[:10]}, {how}).")


@fixes_app.command("drop")
def fixes_drop(
    proposal_id: str,
    force: bool = typer.Option(False, "--force", help="Drop even if the fix was never merged."),
    root: Path = RootOption,
) -> None:
    """Remove a fix's worktree and branch."""
    service = _service(root)
    rec = _fix_record(service, proposal_id)
    if rec.branch_deleted or rec.fix_status == "dropped":
        raise failed(f"not dropped: {rec.branch} was already deleted")
    try:
        merged = service.fixes.drop(rec, force=force) or rec.fix_status == "merged"
    except FixError as exc:
        raise failed(f"not dropped: {exc}") from None

    def settle(record: JournaledProposal) -> None:
        record.fix_status = "merged" if merged else "dropped"
        record.branch_deleted = True

    service.journal.update(rec.id, settle)
    if merged:
        console.print(f"Deleted {rec.branch}; the fix stays listed as merged.")
    else:
        console.print(f"Dropped {rec.branch}.")


def approve_command(proposal_id: str, root: Path = RootOption) -> None:
    """Approve a pending proposal: its fix branch is built now; the daemon tells the platform."""
    service = _service(root)
    try:
        rec = asyncio.run(service.approve(proposal_id, by="cli"))
    except BridgeError as exc:
        raise _refused(exc) from None
    if rec.status != "applied":
        raise failed(f"proposal {rec.id} is {rec.status}: {rec.reason}")
    console.print(f"Approved {rec.id}: branch {rec.branch} at {(rec.commit or '')[:10]}")


def reject_command(
    proposal_id: str,
    reason: str = typer.Option("", "--reason", help="Goes back to Ollie."),
    root: Path = RootOption,
) -> None:
    """Reject a pending proposal, optionally telling Ollie why."""
    service = _service(root)
    try:
        rec = asyncio.run(service.reject(proposal_id, reason or None, by="cli"))
    except BridgeError as exc:
        raise _refused(exc) from None
    console.print(f"Rejected {rec.id}.")


def register_fixes_commands(app: typer.Typer) -> None:
    """Adds `fixes`, `approve` and `reject` to the root CLI."""
    app.add_typer(fixes_app, name="fixes")
    app.command("approve")(approve_command)
    app.command("reject")(reject_command)
