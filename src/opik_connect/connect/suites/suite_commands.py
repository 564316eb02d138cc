"""The suite entry points the daemon wires: the platform's RunSuite command and the rerun after a
fix commit. RunSuite is the only execution the platform can trigger, and only of declared suites."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

from rich.console import Console

from opik_connect.config import project_state_dir
from opik_connect.connect.fixes.branches import BRANCH_PREFIX, FixSummary, parse_worktrees
from opik_connect.connect.proposals.journal import ProposalJournal
from opik_connect.connect.sandbox.outbound_redaction import redact_summary
from opik_connect.connect.suites.llm_judge import Judge, judge_from_config
from opik_connect.connect.suites.platform_sink import SinkLookup
from opik_connect.connect.suites.run_records import USER_TREE
from opik_connect.connect.suites.suite_files import list_suites, suite_path
from opik_connect.connect.suites.suite_report import header_printer, progress_bar, render_summary
from opik_connect.connect.suites.suite_runner import DEFAULT_RUN_TIMEOUT_S, run_suite
from opik_connect.connect.suites.suite_tracing import TraceSink
from opik_connect.git_runner import GitError, run_async
from opik_connect.protocol import BridgeError, ErrorCode, RunSuiteArgs, SuiteRunSummary

RunSuiteHandler = Callable[[RunSuiteArgs], Awaitable[SuiteRunSummary]]
AfterCommit = Callable[[FixSummary], Awaitable[list[SuiteRunSummary]]]


def make_run_suite_handler(
    root: Path,
    *,
    workers: int | None = None,
    run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
    judge: Judge | Literal["auto"] | None = "auto",
    console: Console | None = None,
    trace_sink: SinkLookup | None = None,
) -> RunSuiteHandler:
    """The daemon's `RunSuite` handler. One platform-triggered run at a time, so the platform
    cannot multiply the processes started on the user's machine. The summary it returns is
    redacted (outputs, errors, reasons); the local record and the terminal keep it exact.
    `trace_sink` finds the platform's sink the runs log to when no Opik server is configured."""
    one_at_a_time = asyncio.Lock()

    async def handle(args: RunSuiteArgs) -> SuiteRunSummary:
        suite_path(root, args.suite)
        tree, label = await resolve_tree(root, args.branch)
        sink = await trace_sink() if trace_sink is not None else None
        async with one_at_a_time:
            with contextlib.ExitStack() as stack:
                progress = (
                    stack.enter_context(progress_bar(console, f"{args.suite} on {label}"))
                    if console is not None
                    else None
                )
                summary = await run_suite(
                    root,
                    args.suite,
                    tree=tree,
                    tree_label=label,
                    item_ids=args.item_ids,
                    workers=workers,
                    judge=judge,
                    progress=progress,
                    run_timeout_s=run_timeout_s,
                    header=header_printer(console) if console is not None else None,
                    trace_sink=sink,
                )
        if console is not None:
            render_summary(console, summary)
        return redact_summary(summary)

    return handle


async def resolve_tree(root: Path, branch: str | None) -> tuple[Path, str]:
    """The tree RunSuite may run in: the user's checkout (no branch, or its current branch) or
    the worktree of a fix branch a proposal made. Any other branch, such as one the user has
    checked out in another worktree of their own, is refused: the platform runs only what the
    user's tree or an approved fix holds."""
    if branch is None:
        return root, USER_TREE
    root = await asyncio.to_thread(root.resolve)
    worktrees = await _worktrees(root)
    if worktrees.get(root) == f"refs/heads/{branch}":
        return root, USER_TREE
    if branch.startswith(BRANCH_PREFIX) and await asyncio.to_thread(_has_fix_record, root, branch):
        for path, ref in worktrees.items():
            if ref == f"refs/heads/{branch}":
                return path, branch
        raise BridgeError(
            ErrorCode.INVALID_ARGS,
            f"fix branch {branch!r} is not checked out in a worktree (was it dropped?)",
            branch=branch,
        )
    raise BridgeError(
        ErrorCode.INVALID_ARGS,
        f"RunSuite runs on your checkout (branch omitted, or its current branch) or on a fix "
        f"branch ({BRANCH_PREFIX}...) made from a proposal; {branch!r} is neither",
        branch=branch,
    )


def _has_fix_record(root: Path, branch: str) -> bool:
    """Whether an applied, not dropped, proposal in this project's journal made `branch`."""
    journal = ProposalJournal(project_state_dir(root))
    return any(
        record.branch == branch and record.status == "applied" and record.fix_status != "dropped"
        for record in journal.all()
    )


async def _worktrees(root: Path) -> dict[Path, str | None]:
    try:
        done = await run_async(root, "worktree", "list", "--porcelain")
    except GitError as exc:
        raise BridgeError(ErrorCode.INVALID_ARGS, f"not a git repository: {exc.stderr}") from None
    return await asyncio.to_thread(parse_worktrees, done.text)


async def rerun_after_fix(
    root: Path,
    worktree: Path,
    branch: str,
    suite_names: list[str] | None,
    failing_item_ids: list[str],
    *,
    proposal_id: str | None = None,
    workers: int | None = None,
    judge: Judge | Literal["auto"] | None = "auto",
    run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
    console: Console | None = None,
    trace_sink: TraceSink | None = None,
) -> list[SuiteRunSummary]:
    """Rerun the proposal's suites (all suites of the worktree if none is linked) in the fix
    worktree, the failing items the proposal named first; each run is recorded under the branch
    and proposal so `fixes show` finds before -> after. A suite that cannot run (missing, invalid)
    raises: the caller records that the rerun failed rather than a made-up result."""
    names = suite_names or await asyncio.to_thread(list_suites, worktree)
    console = console or Console(stderr=True)
    owned = await asyncio.to_thread(judge_from_config, root) if judge == "auto" else None
    active = owned if judge == "auto" else judge
    summaries = []
    try:
        for name in names:
            with progress_bar(console, f"{name} on {branch}") as progress:
                summary = await run_suite(
                    root,
                    name,
                    tree=worktree,
                    tree_label=branch,
                    first_items=failing_item_ids,
                    workers=workers,
                    judge=active,
                    progress=progress,
                    run_timeout_s=run_timeout_s,
                    proposal_id=proposal_id,
                    header=header_printer(console),
                    trace_sink=trace_sink,
                )
            render_summary(console, summary, first_items=failing_item_ids)
            summaries.append(summary)
    finally:
        if owned is not None:
            await owned.aclose()
    return summaries


def make_after_commit(
    root: Path,
    *,
    workers: int | None = None,
    judge: Judge | Literal["auto"] | None = "auto",
    run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
    console: Console | None = None,
    trace_sink: SinkLookup | None = None,
) -> AfterCommit:
    """ProposalService's `after_commit` hook: rerun_after_fix for one committed fix."""

    async def after_commit(fix: FixSummary) -> list[SuiteRunSummary]:
        if fix.worktree is None:
            raise BridgeError(ErrorCode.INTERNAL, f"fix {fix.id} has no worktree to run in")
        return await rerun_after_fix(
            root,
            fix.worktree,
            fix.branch,
            [fix.suite] if fix.suite else None,
            fix.test_case_ids,
            proposal_id=fix.id,
            workers=workers,
            judge=judge,
            run_timeout_s=run_timeout_s,
            console=console,
            trace_sink=await trace_sink() if trace_sink is not None else None,
        )

    return after_commit
