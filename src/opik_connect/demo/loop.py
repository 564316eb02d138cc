"""The demo's run: the embedded platform and daemon, the suite, Ollie's session, the records."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from opik_connect.agent.platform.services import PlatformServices
from opik_connect.agent.platform.store import PlatformStore
from opik_connect.agent.traces.store import TraceStore
from opik_connect.config import load_project_config
from opik_connect.connect.daemon import Daemon
from opik_connect.connect.fixes.daemon_wiring import FixParts
from opik_connect.connect.proposals.service import ProposalService
from opik_connect.connect.suites.llm_judge import AnthropicJudge
from opik_connect.connect.suites.suite_tracing import TraceSink
from opik_connect.connect.terminal.ask_view import SessionView
from opik_connect.connect.terminal.line_input import LineReader
from opik_connect.connect.terminal.ollie_prompt import (
    ApprovalTakeover,
    AskContext,
    OllieTerminal,
    daemon_asker,
)
from opik_connect.demo.approvals import HeadedVerifier, PromptApprovals, YesApprovals
from opik_connect.demo.backends import (
    SPAN_BUILD_PROMPT,
    SPAN_RETRIEVE,
    TRACE_FAILING,
    TRACE_SUCCEEDING,
    Backends,
    model_backends,
)
from opik_connect.demo.production import FAILING, SUCCEEDING, LoggedTraffic, log_production
from opik_connect.demo.project_copy import DemoDirs, copy_example, init_repo
from opik_connect.demo.scenario import FAILING_CASE, QUESTION, SUITE, DemoError, Outcome
from opik_connect.demo.steps import Steps, span_tree
from opik_connect.demo.summary import summarize
from opik_connect.protocol import AskEvent, AskRequest, RunSuiteArgs

CONNECT_TIMEOUT_S = 15


async def run_demo(dirs: DemoDirs, fixtures: Path, *, yes: bool, console: Console) -> bool:
    """The whole loop; True when it completed. The daemon is stopped whatever happens."""
    steps = Steps(console)
    steps.show("setup", "a fresh copy of the example project")
    copied = await asyncio.to_thread(copy_example, fixtures / "example_project", dirs.project)
    head = await asyncio.to_thread(init_repo, dirs.project)
    console.print(
        f"project  {escape(str(dirs.project))}  ({copied} files, first commit {head[:10]} on main)"
    )
    console.print(
        f"state    {escape(str(dirs.state))}  (the demo's own; your real state is not touched)"
    )
    with model_backends(fixtures) as backends:
        for line in backends.lines:
            console.print(line, highlight=False)
        try:
            outcome = await _loop(dirs, fixtures, backends, steps, console, yes=yes)
        finally:
            if isinstance(backends.judge, AnthropicJudge):
                await backends.judge.aclose()
    return await summarize(dirs, head, outcome, console)


async def _loop(
    dirs: DemoDirs,
    fixtures: Path,
    backends: Backends,
    steps: Steps,
    console: Console,
    *,
    yes: bool,
) -> Outcome:
    config = await asyncio.to_thread(load_project_config, dirs.project)
    if backends.model is not None:
        config = config.model_copy(update={"model": backends.model})
    traces = TraceStore()  # the platform's sink, once set up: the log step fills it
    services = PlatformServices(
        config=config,
        traces=traces,
        transcript_dir=dirs.state / "transcripts",
        env=backends.ollie_env,
    )
    fixes = FixParts(console=console, terminal=False, judge=backends.judge)
    daemon = Daemon(dirs.project, config, platform_setup=services.setup, parts=fixes.parts)
    outcome = Outcome(scripted=backends.model is not None)
    try:
        async with daemon:
            try:
                await daemon.wait_connected(CONNECT_TIMEOUT_S)
            except TimeoutError:
                raise DemoError(
                    f"the daemon did not connect to the embedded platform in {CONNECT_TIMEOUT_S}s"
                ) from None
            assert daemon.platform is not None and fixes.service is not None
            summary = await daemon.root_summary()
            console.print(
                f"platform {daemon.platform.url} (embedded, on loopback); daemon connected "
                f"over the websocket, serving {summary.visible_files} files"
            )
            if fixes.service.verifier is not None:
                fixes.service.verifier = HeadedVerifier(fixes.service.verifier, steps)
            runner = daemon.platform.runner(daemon.identity.runner_id)
            store = services.store
            assert store is not None

            assert services.trace_sink is not None
            sink = TraceSink(services.trace_sink.url, daemon.platform.operator_token)
            steps.show("log", "production traffic of the agent, into the platform's trace sink")
            logged = await log_production(dirs.project, fixtures, sink)
            await _show_logged(logged, traces, backends, console, outcome)

            steps.show("test", f"suite {SUITE} on your tree (RunSuite, sent by the platform)")
            outcome.before = await runner.run_suite(RunSuiteArgs(suite=SUITE))
            await store.record_suite_result(runner.runner_id, outcome.before)

            steps.show("analyze", "Ollie compares the failing trace with a successful one")
            view = await _ask_ollie(daemon, fixes.service, steps, console, outcome, yes=yes)
            outcome.session_id = view.session_id
            outcome.session_status = view.status
            outcome.final_answer = view.final_answer
            await _collect(store, fixes.service, outcome)
    finally:
        await services.aclose()
    return outcome


async def _show_logged(
    logged: LoggedTraffic,
    traces: TraceStore,
    backends: Backends,
    console: Console,
    outcome: Outcome,
) -> None:
    """Both logged traces as the sink holds them, and their ids bound into the script."""
    console.print(f"logged by {escape(logged.by)}", soft_wrap=True)
    failing = await traces.get(logged.ids[FAILING.slug])
    succeeding = await traces.get(logged.ids[SUCCEEDING.slug])
    for label, record in (("failing", failing), ("succeeding", succeeding)):
        scores = ", ".join(f"{s.name}={s.value:g}" for s in record.trace.feedback_scores or [])
        console.print(f"\n[bold]{label}[/] trace {record.trace.id}  (customer feedback: {scores})")
        console.print(span_tree(record))
    span_ids = {span.name: span.id for span in failing.spans}
    backends.bind_ids(
        {
            TRACE_FAILING: failing.trace.id,
            TRACE_SUCCEEDING: succeeding.trace.id,
            SPAN_BUILD_PROMPT: span_ids.get("build_prompt", ""),
            SPAN_RETRIEVE: span_ids.get("retrieve_articles", ""),
        }
    )
    outcome.trace_id = failing.trace.id
    outcome.logged_by = logged.by


def _recording_tools(daemon: Daemon, outcome: Outcome):
    """The daemon's asker, noting each tool Ollie calls (the summary names them)."""
    ask = daemon_asker(daemon)

    async def recorded(request: AskRequest) -> AsyncIterator[AskEvent]:
        async for event in ask(request):
            if event.type == "tool_called" and isinstance(event.data.get("name"), str):
                outcome.tools.append(event.data["name"])
            yield event

    return recorded


async def _ask_ollie(
    daemon: Daemon,
    service: ProposalService,
    steps: Steps,
    console: Console,
    outcome: Outcome,
    *,
    yes: bool,
) -> SessionView:
    """One `ollie>` question as the daemon's terminal asks it, approvals on the same terminal."""
    approvals: ApprovalTakeover
    with contextlib.ExitStack() as stack:
        if yes:
            fd = os.open(os.devnull, os.O_RDONLY)  # nothing is read: --yes decides
            stack.callback(os.close, fd)
            approvals = YesApprovals(service, console, steps)
        else:
            fd = sys.stdin.fileno()
            approvals = PromptApprovals(service, console, fd, steps)
        terminal = OllieTerminal(
            console, _recording_tools(daemon, outcome), lines=LineReader(fd), approvals=approvals
        )
        terminal.context = AskContext(
            trace_id=outcome.trace_id, suite=SUITE, case_ids=[FAILING_CASE]
        )
        terminal.show_context()
        console.print(f"[bold]ollie>[/] {escape(QUESTION)}", highlight=False)
        return await terminal.ask(QUESTION)


async def _collect(store: PlatformStore, service: ProposalService, outcome: Outcome) -> None:
    """What the platform recorded of this session (its proposal, the decision, the rerun), and
    the journal's view of the proposal."""
    proposals = await store.list_proposals(outcome.session_id) if outcome.session_id else []
    proposal_id = proposals[-1].proposal_id if proposals else None
    decision = await store.get_decision(proposal_id) if proposal_id else None
    runs = [outcome.before] if outcome.before else []
    if proposal_id is not None:
        outcome.proposal = await asyncio.to_thread(service.get, proposal_id)
        reruns = await store.list_suite_results(suite=SUITE, proposal_id=proposal_id)
        runs += [r.run for r in reruns if r.run.tree != "user"]
        outcome.after = runs[-1] if len(runs) > 1 else None
    outcome.recorded = (
        f"session {outcome.session_id or '-'}, {len(proposals)} proposal(s), "
        f"{'a' if decision else 'no'} decision, {len(runs)} suite run(s)"
    )
