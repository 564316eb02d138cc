"""The fixes feature as daemon parts: proposals, suites, and the terminal that decides on them.

    fixes = fix_parts(auto_approve=False, console=console)
    async with Daemon(root, config, parts=fixes.parts) as daemon:
        fixes.service          # the project's ProposalService, set once the daemon started

The fixes part serves `ProposeChange` and `RunSuite`, feeds the watcher's batches to the
staleness check, runs the proposals' outbox, and sends every suite run (the rerun after a fix and
the platform's RunSuite) to the platform as a `SuiteResult`, so the fix record has its before and
after. Approvals come from the `ollie>` terminal (which owns stdin), or from `run_auto_approver`
with --auto-approve; with no TTY, proposals wait for `opik-connect approve|reject ID`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape

from opik_connect.config import load_project_config
from opik_connect.connect.daemon import Daemon, Part
from opik_connect.connect.fixes.branches import FixSummary
from opik_connect.connect.proposals.decision_outbox import Emit
from opik_connect.connect.proposals.service import ProposalService
from opik_connect.connect.proposals.suite_reruns import AfterCommit
from opik_connect.connect.proposals.verification import ProposalVerifier, RunOnTree
from opik_connect.connect.sandbox.outbound_redaction import redact_summary
from opik_connect.connect.suites.llm_judge import Judge
from opik_connect.connect.suites.platform_sink import sink_lookup
from opik_connect.connect.suites.suite_commands import make_after_commit, make_run_suite_handler
from opik_connect.connect.suites.suite_report import progress_bar, render_summary
from opik_connect.connect.suites.suite_runner import DEFAULT_RUN_TIMEOUT_S, run_suite
from opik_connect.connect.terminal.approval_prompt import run_auto_approver
from opik_connect.connect.terminal.ollie_prompt import ollie_terminal_part
from opik_connect.connect.terminal.prompt_line import PromptLine
from opik_connect.connect.terminal.visible_text import visible
from opik_connect.protocol import (
    ProposalDecided,
    ProposeChangeArgs,
    ProposeChangeResult,
    RunSuiteArgs,
    SuiteResult,
    SuiteRunSummary,
)


class FixParts:
    """The parts that make a daemon take proposals and run suites; holds the ProposalService."""

    def __init__(
        self,
        *,
        auto_approve: bool = False,
        console: Console | None = None,
        terminal: bool = True,
        workers: int | None = None,
        judge: Judge | Literal["auto"] | None = "auto",
        run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
        outbox_interval_s: float = 2.0,
        ack_timeout_s: float = 10.0,
    ) -> None:
        """terminal=False leaves stdin alone (no `ollie>`, no approval prompt): the caller
        approves through `service` (or --auto-approve does)."""
        self.auto_approve = auto_approve
        self.console = console or Console(highlight=False)
        self.prompt_line = PromptLine(self.console)
        """Notices go through it, so they never land on a waiting `ollie>` prompt's line."""
        self.terminal = terminal
        self.workers = workers
        self.judge = judge
        self.run_timeout_s = run_timeout_s
        self.outbox_interval_s = outbox_interval_s
        self.ack_timeout_s = ack_timeout_s
        """How long a decision waits for the platform's Ack before the outbox retries it."""
        self.service: ProposalService | None = None
        """The daemon's ProposalService, set when the fixes part runs (at daemon start)."""

    @property
    def parts(self) -> list[Part]:
        """The fixes part first (it makes the service), then whoever decides on proposals."""
        parts: list[Part] = [self.fixes_part]
        if self.auto_approve:
            parts.append(self.auto_approve_part)
        if self.terminal:
            parts.append(ollie_terminal_part(self._approvals, prompt_line=self.prompt_line))
        return parts

    def _approvals(self, daemon: Daemon) -> ProposalService | None:
        """What the terminal's approval prompt decides on: nothing when auto-approving."""
        return None if self.auto_approve else self.service

    async def fixes_part(self, daemon: Daemon) -> None:
        root = daemon.root
        mode = load_project_config(root).verify
        service = ProposalService.for_project(
            root,
            emit=self._emit_decision(daemon),
            after_commit=self._after_commit(daemon) if mode != "off" else None,
            notify=lambda message: self.prompt_line.notice(f"[yellow]●[/] {escape(message)}"),
        )
        if mode == "before":
            service.verifier = ProposalVerifier(root, service.fixes, self._run_on_tree(daemon))
        self.service = service
        run_suite = make_run_suite_handler(
            root,
            workers=self.workers,
            run_timeout_s=self.run_timeout_s,
            judge=self.judge,
            console=self.console,
            trace_sink=sink_lookup(daemon),
        )

        async def propose_change(args: ProposeChangeArgs) -> ProposeChangeResult:
            if service.verifier is not None:
                self.prompt_line.notice(
                    f"[cyan]●[/] verifying a proposal: {escape(visible(args.title))} "
                    "[dim](built in a scratch worktree; the suite runs there)[/]"
                )
            result = await service.submit(args)
            check = result.verification
            if result.status == "held" and check is not None:
                self.prompt_line.notice(
                    f"[dim]● proposal {result.proposal_id} held back for Ollie to revise: "
                    f"{escape(visible(check.summary))}[/]"
                )
                return result
            self.prompt_line.notice(proposal_notice(args, result, self.auto_approve))
            return result

        async def run_suite_and_report(args: RunSuiteArgs) -> SuiteRunSummary:
            summary = await run_suite(args)
            proposal_id = await asyncio.to_thread(_proposal_of, service, args.branch)
            await _report_run(daemon, summary, proposal_id)
            return summary

        daemon.handlers["ProposeChange"] = propose_change
        daemon.handlers["RunSuite"] = run_suite_and_report
        daemon.file_listeners.append(service.on_files_changed)
        daemon.add_service(lambda: service.run(self.outbox_interval_s))

    async def auto_approve_part(self, daemon: Daemon) -> None:
        service = self.service
        assert service is not None, "the fixes part must run first"
        daemon.add_service(lambda: run_auto_approver(service, self.console))

    def _emit_decision(self, daemon: Daemon) -> Emit:
        """Returns once the platform acked the decision, so the journal marks it delivered only
        then; raises otherwise and the outbox sends it again, under the same event id, which
        the platform takes once."""

        async def emit(event: BaseModel) -> None:
            assert isinstance(event, ProposalDecided)
            connected = daemon.link is not None and daemon.link.connected.is_set()
            await daemon.send_event(
                "ProposalDecided",
                event,
                event_id=f"ProposalDecided:{event.proposal_id}",
                wait_ack=True,
                ack_timeout_s=self.ack_timeout_s if connected else 0.0,
            )
            self._show_decision(event)

        return emit

    def _show_decision(self, event: ProposalDecided) -> None:
        where = f" on [bold]{escape(event.branch)}[/]" if event.branch else ""
        suites = ", ".join(f"{run.suite} {run.status}" for run in event.suite_results)
        tail = f" [dim](suite: {escape(suites)})[/]" if suites else ""
        why = f": {escape(event.reason)}" if event.reason else ""
        self.prompt_line.notice(
            f"[green]●[/] proposal [bold]{event.proposal_id}[/] {event.decision}{where}{why}{tail}"
            " [dim]- sent to the platform[/]"
        )

    def _run_on_tree(self, daemon: Daemon) -> RunOnTree:
        """How verification runs a suite: shown here like a rerun, reported to the platform."""

        async def run(
            suite: str, tree: Path, label: str, first: list[str], proposal_id: str | None
        ) -> SuiteRunSummary:
            sink = await sink_lookup(daemon)()
            waiting = self.prompt_line.showing
            self.prompt_line.leave()  # the tables need whole lines; the prompt comes back after
            with progress_bar(self.console, f"{suite} on {label}") as progress:
                summary = await run_suite(
                    daemon.root,
                    suite,
                    tree=tree,
                    tree_label=label,
                    first_items=first,
                    workers=self.workers,
                    judge=self.judge,
                    progress=progress,
                    run_timeout_s=self.run_timeout_s,
                    proposal_id=proposal_id,
                    trace_sink=sink,
                )
            render_summary(self.console, summary, first_items=first)
            if waiting:
                self.prompt_line.draw()
            await _report_run(daemon, summary, proposal_id)
            return summary

        return run

    def _after_commit(self, daemon: Daemon) -> AfterCommit:
        rerun = make_after_commit(
            daemon.root,
            workers=self.workers,
            judge=self.judge,
            run_timeout_s=self.run_timeout_s,
            console=self.console,
            trace_sink=sink_lookup(daemon),
        )

        async def after_commit(fix: FixSummary) -> list[SuiteRunSummary]:
            runs = await rerun(fix)
            for run in runs:
                await _report_run(daemon, run, fix.id)
            return runs

        return after_commit


async def _report_run(daemon: Daemon, run: SuiteRunSummary, proposal_id: str | None) -> None:
    """Every suite run goes to the platform's store (a user-tree run is a fix's 'before'),
    redacted: an agent's output or traceback can carry the secrets it was run with."""
    await daemon.send_event(
        "SuiteResult", SuiteResult(run=redact_summary(run), proposal_id=proposal_id)
    )


def proposal_notice(args: ProposeChangeArgs, result: ProposeChangeResult, auto: bool) -> str:
    """The line that says a proposal arrived, and how it will be decided (rich markup)."""
    how = (
        "auto-approving"
        if auto
        else f"decide here or with `opik-connect approve|reject {result.proposal_id}`"
    )
    return (
        f"[cyan]●[/] proposal [bold]{result.proposal_id}[/]: {escape(visible(args.title))} "
        f"[dim]({len(result.files)} file(s); {how})[/]"
    )


def _proposal_of(service: ProposalService, branch: str | None) -> str | None:
    """The proposal whose fix branch this is (so a run there becomes the fix's 'after')."""
    if branch is None:
        return None
    for record in service.journal.all():
        if record.branch == branch:
            return record.id
    return None


def fix_parts(
    *,
    auto_approve: bool = False,
    console: Console | None = None,
    terminal: bool = True,
    judge: Judge | Literal["auto"] | None = "auto",
) -> FixParts:
    """The parts `opik-connect` runs; `.parts` goes to Daemon(parts=...), `.service` after start."""
    return FixParts(auto_approve=auto_approve, console=console, terminal=terminal, judge=judge)
