"""`opik-connect demo`: the whole loop (log → analyze → test → improve → validate) in one command.

It copies the example project (fixtures/example_project) into a fresh git repo and runs the same
parts `opik-connect` runs: the embedded platform (store, sessions, HTTP API) and the daemon, over
the real websocket, with FixParts (connect/fixes/daemon_wiring.py) serving proposals and suites.
Ollie is the real tool-using loop; without ANTHROPIC_API_KEY its model turns and the judge's
verdicts are replayed from fixtures/demo/*.json by a local Messages API stand-in, and the demo
says so. The decision is the user's, through the real approval prompt (or --yes, which says so).

Exit codes: 0 the loop completed (suite failed before, passed after), 1 it did not, 2 there is no
terminal to approve in and --yes was not given.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Literal

import typer
from rich.console import Console, Group
from rich.markdown import Markdown
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from opik_connect.agent.platform.services import PlatformServices
from opik_connect.agent.platform.store import PlatformStore
from opik_connect.agent.traces.render import render_trace
from opik_connect.agent.traces.store import TraceStore, TraceWithSpans
from opik_connect.cli_errors import failed, usage_error
from opik_connect.config import load_project_config
from opik_connect.connect.daemon import Daemon
from opik_connect.connect.fixes.daemon_wiring import FixParts
from opik_connect.connect.proposals.journal import JournaledProposal
from opik_connect.connect.proposals.service import ProposalService
from opik_connect.connect.proposals.verification import ProposalVerifier
from opik_connect.connect.suites.llm_judge import AnthropicJudge, Judge
from opik_connect.connect.terminal.approval_prompt import render_proposal
from opik_connect.connect.terminal.ask_view import SessionView
from opik_connect.connect.terminal.line_input import LineReader
from opik_connect.connect.terminal.ollie_prompt import (
    ApprovalTakeover,
    AskContext,
    OllieTerminal,
    ProposalApprovals,
    daemon_asker,
)
from opik_connect.git_runner import GitError, run, run_async
from opik_connect.protocol import BridgeError, RunSuiteArgs, SuiteRunSummary, Verification

FIXTURES_ENV = "OPIK_CONNECT_FIXTURES"
STATE_ENV = "OPIK_CONNECT_STATE_DIR"
TRACE_ID = "01a20cc8-8e80-7db4-9391-3add8bd68e37"
SUITE = "customer-support-qa"
FAILING_CASE = "refund-window"
QUESTION = (
    "A customer asked whether they can still return order A1002 for a refund and got only the "
    "delivery date back. Find the step in this trace that went wrong and propose the smallest fix."
)
SCRIPTED_MODEL = "scripted-replay"
SKIPPED_NAMES = {
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
}
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".egg-info")
CONNECT_TIMEOUT_S = 15
DEMO_IDENTITY = ("opik-connect demo", "demo@opik-connect.invalid")


class DemoError(Exception):
    """Something stopped the demo; shown as one line."""


# --- where things are ---------------------------------------------------------------------------


def fixtures_dir() -> Path:
    """fixtures/ of the source checkout (the README installs editable), or OPIK_CONNECT_FIXTURES."""
    override = os.environ.get(FIXTURES_ENV)
    path = Path(override) if override else Path(__file__).resolve().parents[2] / "fixtures"
    if not (path / "example_project").is_dir() or not (path / "demo").is_dir():
        raise DemoError(
            f"the demo's fixtures are not at {path}: run it from a source checkout "
            f"(pip install -e .) or set {FIXTURES_ENV} to its fixtures/ directory"
        )
    return path


@dataclass(frozen=True)
class DemoDirs:
    base: Path
    project: Path
    state: Path


def demo_dirs(keep: Path | None) -> DemoDirs:
    """--keep DIR (new or empty), else a fresh temp dir; both are left behind for review."""
    if keep is None:
        base = Path(tempfile.mkdtemp(prefix="opik-connect-demo-"))
    else:
        base = keep.expanduser().resolve()
        try:
            if base.exists() and (not base.is_dir() or any(base.iterdir())):
                raise DemoError(f"--keep {base}: choose a new or empty directory")
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DemoError(f"--keep {base}: {exc.strerror or exc}") from None
    return DemoDirs(base=base, project=base / "project", state=base / "state")


def _tracked_files(source: Path) -> list[Path]:
    """The example's files as git would track them: git's own listing, else the same skip rules."""
    try:
        listed = run(
            source, "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "."
        )
    except GitError:
        listed = None
    if listed is not None and listed.out:
        return [source / name for name in listed.out.decode().split("\0") if name]
    return [
        path
        for path in sorted(source.rglob("*"))
        if path.is_file()
        and not any(part in SKIPPED_NAMES for part in path.relative_to(source).parts)
        and not path.name.endswith(SKIPPED_SUFFIXES)
    ]


def copy_example(source: Path, dest: Path) -> int:
    """Copy the example project's tracked files into `dest`; returns how many."""
    files = [path for path in _tracked_files(source) if path.is_file()]
    for path in files:
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return len(files)


def init_repo(project: Path) -> str:
    """`git init`, a local demo identity, and the first commit; returns HEAD."""
    name, email = DEMO_IDENTITY
    run(project, "init", "-q", "-b", "main")
    run(project, "config", "user.name", name)
    run(project, "config", "user.email", email)
    run(project, "config", "commit.gpgsign", "false")
    run(project, "add", "-A")
    run(project, "commit", "-q", "-m", "Trailhead support agent (opik-connect example)")
    return run(project, "rev-parse", "HEAD").text


# --- the model: a real one with a key, else the scripted replay ---------------------------------


def _scripted_api_module(fixtures: Path) -> ModuleType:
    """fixtures/scripted_messages_api.py, loaded from the checkout (fixtures/ is not installed)."""
    path = fixtures / "scripted_messages_api.py"
    spec = importlib.util.spec_from_file_location("opik_connect_demo_scripted_api", path)
    if spec is None or spec.loader is None:
        raise DemoError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Backends:
    """Who answers as Ollie's model and who judges natural-language assertions."""

    ollie_env: dict[str, str]
    judge: Judge | Literal["auto"]
    model: str | None
    lines: list[str] = field(default_factory=list)


@contextlib.contextmanager
def model_backends(fixtures: Path) -> Iterator[Backends]:
    """The real model and judge when ANTHROPIC_API_KEY is set; else both replayed from scripts
    served on 127.0.0.1 (the real SDK pointed at them through base_url)."""
    if os.environ.get("ANTHROPIC_API_KEY", "").strip():
        yield Backends(
            ollie_env=dict(os.environ),
            judge="auto",
            model=None,
            lines=[
                "Ollie: [bold]real model[/] (ANTHROPIC_API_KEY is set; model from the example's "
                "config)",
                "judge: [bold]real judge[/] for natural-language assertions",
            ],
        )
        return
    scripted = _scripted_api_module(fixtures)
    session_script = fixtures / "demo" / "ollie_session.json"
    judge_script = fixtures / "demo" / "judge_script.json"
    with (
        scripted.ScriptedMessagesAPI(scripted.load_script(session_script)) as ollie_api,
        scripted.ScriptedMessagesAPI(scripted.load_script(judge_script)) as judge_api,
    ):
        judge = AnthropicJudge(
            model=SCRIPTED_MODEL,
            api_key="scripted",
            base_url=judge_api.url,
            max_retries=0,
            label="scripted",
        )
        yield Backends(
            ollie_env={"ANTHROPIC_API_KEY": "scripted", "ANTHROPIC_BASE_URL": ollie_api.url},
            judge=judge,
            model=SCRIPTED_MODEL,
            lines=[
                "Ollie: [bold yellow]scripted session[/]: replaying "
                "fixtures/demo/ollie_session.json; no model is called "
                "(set ANTHROPIC_API_KEY for a real one)",
                "judge: [bold yellow]scripted judge[/]: verdicts from "
                "fixtures/demo/judge_script.json; no model is called",
            ],
        )


# --- approvals ----------------------------------------------------------------------------------


IMPROVE = ("improve", "Ollie's proposal, already verified; nothing changes without your yes")
VALIDATE = ("validate", "the proposal built in a scratch worktree and the suite run on it")


class PromptApprovals(ProposalApprovals):
    """The real approval prompt on the terminal, under the improve heading. Ollie waits for this
    decision, so putting it off (s, q) only asks again."""

    def __init__(self, service: ProposalService, console: Console, fd: int, steps: Steps) -> None:
        watched = _ValidateOnApprove(service, lambda: steps.show(*VALIDATE))
        super().__init__(watched, console, fd)  # type: ignore[arg-type]
        self.steps = steps

    async def take_over(self) -> None:
        self.steps.show(*IMPROVE)
        await super().take_over()
        while self.service.pending():
            self.deferred.clear()
            self.console.print(
                "[yellow]The demo goes on once you decide: y approves, n rejects.[/]"
            )
            await super().take_over()


class YesApprovals:
    """--yes: each proposal is shown as the prompt shows it, then approved without asking."""

    def __init__(self, service: ProposalService, console: Console, steps: Steps) -> None:
        self.service = service
        self.changed = service.changed
        self.console = console
        self.steps = steps

    def waiting(self) -> bool:
        return bool(self.service.pending())

    async def take_over(self) -> None:
        self.steps.show(*IMPROVE)
        for record in self.service.pending():
            self.console.print(render_proposal(record))
            self.console.print(
                f"[bold yellow]--yes[/]: approving proposal {record.id} without asking "
                "(scripted use)"
            )
            self.steps.show(*VALIDATE)
            try:
                done = await self.service.approve(record.id, by="demo --yes")
            except BridgeError as exc:
                self.console.print(f"[red]{exc.code.value}[/]: {escape(exc.message)}")
                continue
            self.console.print(
                f"[green]Approved[/]: branch {escape(done.branch or '-')} at "
                f"{(done.commit or '')[:10]} ({done.status}{_reused(done)})"
            )


def _reused(record: JournaledProposal) -> str:
    check = record.verification
    if check is None or record.commit != check.commit:
        return ""
    return "; the verified build: no second build, no second suite run"


class _HeadedVerifier(ProposalVerifier):
    """The daemon's verifier, putting up the validate heading when a proposal arrives."""

    def __init__(self, verifier: ProposalVerifier, steps: Steps) -> None:
        super().__init__(verifier.root, verifier.fixes, verifier.run)
        self.steps = steps

    async def verify(self, record: JournaledProposal) -> Verification:
        self.steps.show(*VALIDATE)
        return await super().verify(record)


class _ValidateOnApprove:
    """The service as the approval prompt sees it: approving first puts up the validate heading."""

    def __init__(self, service: ProposalService, on_validate: Callable[[], None]) -> None:
        self._service = service
        self._on_validate = on_validate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    async def approve(self, proposal_id: str, by: str = "user") -> JournaledProposal:
        self._on_validate()
        return await self._service.approve(proposal_id, by=by)


# --- the run ------------------------------------------------------------------------------------


class Steps:
    """The step headings, each shown once, in the loop's words."""

    NAMES = ("log", "test", "analyze", "validate", "improve")
    """Validate comes before improve: the daemon verifies a proposal before asking you."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.shown: set[str] = set()

    def show(self, name: str, text: str) -> None:
        if name in self.shown:
            return
        self.shown.add(name)
        number = self.NAMES.index(name) + 1 if name in self.NAMES else None
        label = f"{number}/{len(self.NAMES)} {name}" if number else name
        self.console.print()
        self.console.rule(f"[bold cyan]{label}[/]: {text}", align="left")


@dataclass
class Outcome:
    before: SuiteRunSummary | None = None
    after: SuiteRunSummary | None = None
    session_id: str | None = None
    session_status: str | None = None
    final_answer: str | None = None
    proposal: JournaledProposal | None = None
    recorded: str = "nothing"
    problems: list[str] = field(default_factory=list)


def span_tree(record: TraceWithSpans) -> Text:
    """The trace's question and answer, then its span tree (render_trace's lines, values left
    out: Ollie reads them in full)."""
    trace = record.trace
    text = Text()
    text.append("question  ", style="dim")
    text.append(f"{_field(trace.input, 'question')}\n")
    text.append("answer    ", style="dim")
    text.append(f"{_field(trace.output, 'output')}\n", style="red")
    for line in render_trace(record).splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("trace ", "- ", "spans:")):
            text.append(line + "\n", style="bold" if stripped.startswith("trace ") else "")
    return text


def _field(value: Any, name: str) -> str:
    return str(value.get(name, value)) if isinstance(value, dict) else str(value)


def _items(run: SuiteRunSummary) -> str:
    return f"{sum(item.passed for item in run.items)}/{len(run.items)} items passed"


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
    return await _summarize(dirs, head, outcome, console)


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
    traces = TraceStore(directory=fixtures / "example_traces")
    services = PlatformServices(
        config=config,
        traces=traces,
        transcript_dir=dirs.state / "transcripts",
        env=backends.ollie_env,
    )
    fixes = FixParts(console=console, terminal=False, judge=backends.judge)
    daemon = Daemon(dirs.project, config, platform_setup=services.setup, parts=fixes.parts)
    outcome = Outcome()
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
                fixes.service.verifier = _HeadedVerifier(fixes.service.verifier, steps)
            runner = daemon.platform.runner(daemon.identity.runner_id)
            store = services.store
            assert store is not None

            steps.show("log", f"the failing production trace {TRACE_ID}")
            console.print(span_tree(await traces.get(TRACE_ID)))

            steps.show("test", f"suite {SUITE} on your tree (RunSuite, sent by the platform)")
            outcome.before = await runner.run_suite(RunSuiteArgs(suite=SUITE))
            await store.record_suite_result(runner.runner_id, outcome.before)

            steps.show("analyze", f"Ollie on trace {TRACE_ID}")
            view = await _ask_ollie(daemon, fixes.service, steps, console, yes=yes)
            outcome.session_id = view.session_id
            outcome.session_status = view.status
            outcome.final_answer = view.final_answer
            await _collect(store, fixes.service, outcome)
    finally:
        await services.aclose()
    return outcome


async def _ask_ollie(
    daemon: Daemon, service: ProposalService, steps: Steps, console: Console, *, yes: bool
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
            console, daemon_asker(daemon), lines=LineReader(fd), approvals=approvals
        )
        terminal.context = AskContext(trace_id=TRACE_ID, suite=SUITE, case_ids=[FAILING_CASE])
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


async def _summarize(dirs: DemoDirs, head: str, outcome: Outcome, console: Console) -> bool:
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
    if check is not None:
        facts.append("validated  ", style="bold")
        facts.append(
            f"before you were asked: {check.summary}\n",
            style="green" if check.green else "red",
        )
        if proposal is not None and proposal.commit == check.commit:
            facts.append("           the fix branch is that build (no second suite run)\n")
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


def _interactive() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (AttributeError, OSError, ValueError):
        return False


def demo_command(
    yes: Annotated[
        bool, typer.Option("--yes", help="Approve Ollie's proposal without asking (scripts, CI).")
    ] = False,
    keep: Annotated[
        Path | None,
        typer.Option("--keep", help="Build the demo in this (new or empty) directory."),
    ] = None,
) -> None:
    """Run the whole loop on the example project: log, test, analyze, improve, validate."""
    console = Console(highlight=False)
    if not yes and not _interactive():
        raise usage_error(
            "the demo asks for your approval in a terminal, and stdin is not one; "
            "rerun with --yes to approve without asking"
        )
    try:
        fixtures = fixtures_dir()
        dirs = demo_dirs(keep)
        os.environ.setdefault(STATE_ENV, str(dirs.state))
        dirs = DemoDirs(dirs.base, dirs.project, Path(os.environ[STATE_ENV]))
        completed = asyncio.run(run_demo(dirs, fixtures, yes=yes, console=console))
    except (DemoError, GitError) as exc:
        raise usage_error(str(exc)) from None
    except BridgeError as exc:
        raise failed(f"{exc.code.value}: {exc.message}") from None
    if not completed:
        raise failed("the loop did not complete")
