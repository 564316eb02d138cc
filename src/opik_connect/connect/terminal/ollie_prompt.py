"""The `ollie>` prompt in the daemon's terminal: set the context, ask, watch the session.

    ollie> /trace 0193f...        the trace to look at (/trace alone clears it)
    ollie> /suite refunds         the suite to work with
    ollie> /case item-3           add a test case (/case alone clears them)
    ollie> why did the refund tool double the amount?

The terminal has one reader at a time. Whenever a proposal waits for the user, the approval
prompt takes the terminal over (from a waiting `ollie>` read, or while a session streams); type-
ahead is dropped first, and the session's output is held back until the approval prompt is done.

Daemon entry points (run until end of input; return at once without a terminal): the daemon's
fixes wiring adds `ollie_terminal_part(...)` to its parts, which runs
`run_ollie_terminal(console, daemon_asker(daemon), proposal_service)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, Field, ValidationError
from rich.console import Console
from rich.markup import escape

from opik_connect.connect.daemon import Daemon, Part
from opik_connect.connect.proposals.service import ProposalService
from opik_connect.connect.terminal.approval_prompt import ApprovalPrompt, TerminalKeys
from opik_connect.connect.terminal.ask_client import AskError, ask_stream, locate_platform
from opik_connect.connect.terminal.ask_view import SessionView
from opik_connect.connect.terminal.line_input import LineReader
from opik_connect.connect.terminal.prompt_line import PromptLine
from opik_connect.connect.terminal.visible_text import visible
from opik_connect.protocol import AskEvent, AskRequest, BridgeError

if TYPE_CHECKING:
    from opik_connect.agent.ollie.sessions import OllieSessions

HELP = (
    "Ask Ollie about this project's traces and tests; plain text is a question.\n"
    "  /trace ID     set the trace (/trace alone clears it)\n"
    "  /suite NAME   set the suite (/suite alone clears it)\n"
    "  /case ID      add test case ids (/case alone clears them)\n"
    "  /context      show the context    /help  this text"
)

Asker = Callable[[AskRequest], AsyncIterator[AskEvent]]
"""Starts a session and yields its events up to the 'result' or 'error' one."""


class ApprovalTakeover(Protocol):
    """What the `ollie>` prompt needs from the approval prompt."""

    changed: asyncio.Event
    """Set when proposals may have arrived (ProposalService.changed)."""

    def waiting(self) -> bool:
        """A proposal waits for the user (and was not put off by them)."""
        ...

    async def take_over(self) -> None:
        """Use the terminal until no proposal waits or the user puts them off."""
        ...


class AskContext(BaseModel):
    trace_id: str | None = None
    suite: str | None = None
    case_ids: list[str] = Field(default_factory=list)


def embedded_asker(sessions: OllieSessions) -> Asker:
    """Ask the in-process platform directly (the daemon's embedded one)."""

    async def ask(request: AskRequest) -> AsyncIterator[AskEvent]:
        try:
            live = await sessions.ask(request)
        except BridgeError as exc:
            body = exc.to_body().model_dump(mode="json")
            yield AskEvent(session_id=None, seq=0, type="error", data=body)
            return
        async for event in live.stream():
            yield event

    return ask


def daemon_asker(daemon: Daemon) -> Asker:
    """The embedded platform's sessions in-process; else the daemon's platform over its HTTP API,
    located when asked (token from OPIK_CONNECT_TOKEN or the platform's run file)."""
    if daemon.platform is not None:
        # Imported here, and only for the embedded platform: a daemon dialing a team platform
        # never loads Ollie's loop (~0.2 s just after it connects, when commands arrive).
        from opik_connect.agent.platform.http_api import PlatformHttpApi

        api = daemon.platform.http_api
        if isinstance(api, PlatformHttpApi):
            return embedded_asker(api.sessions)

    async def ask(request: AskRequest) -> AsyncIterator[AskEvent]:
        address = locate_platform(daemon.url, None, root=daemon.root)
        async for event in ask_stream(address, request):
            yield event

    return ask


def ollie_terminal_part(
    proposals: Callable[[Daemon], ProposalService | None],
    console: Console | None = None,
    prompt_line: PromptLine | None = None,
) -> Part:
    """A daemon part: the `ollie>` prompt, with approvals, on the daemon's terminal. Use it instead
    of running the approval prompt on its own: only one of them may read the terminal. Notices
    printed through `prompt_line` keep off the prompt's line."""

    async def part(daemon: Daemon) -> None:
        shown = prompt_line.console if prompt_line is not None else console or Console()

        async def serve() -> None:
            # The prompt comes up once the link is up, so it is not broken by the state lines.
            assert daemon.link is not None
            await daemon.link.connected.wait()
            await run_ollie_terminal(
                shown, daemon_asker(daemon), proposals(daemon), prompt_line=prompt_line
            )

        daemon.add_service(serve)

    return part


class ProposalApprovals:
    """The approval prompt (terminal/approval_prompt.py) as a takeover of the shared terminal."""

    def __init__(self, service: ProposalService, console: Console, fd: int) -> None:
        self.service = service
        self.changed = service.changed
        self.console = console
        self.fd = fd
        self.deferred: set[str] = set()

    def waiting(self) -> bool:
        return any(record.id not in self.deferred for record in self.service.pending())

    async def take_over(self) -> None:
        with TerminalKeys(self.fd) as keys:
            prompt = ApprovalPrompt(self.service, keys, self.console)
            prompt.later = self.deferred  # 's' (later) puts a proposal off for this prompt too
            if not await prompt.drain():  # q: stop asking about the ones waiting now
                self.deferred.update(record.id for record in self.service.pending())


class OllieTerminal:
    """The daemon terminal's input loop: `ollie>` lines, and approvals whenever they wait."""

    def __init__(
        self,
        console: Console,
        asker: Asker,
        *,
        lines: LineReader,
        approvals: ApprovalTakeover | None = None,
        prompt_line: PromptLine | None = None,
    ) -> None:
        self.console = console
        self.prompt_line = prompt_line or PromptLine(console)
        self.asker = asker
        self.lines = lines
        self.approvals = approvals
        self.context = AskContext()
        self._output_free = asyncio.Event()
        self._output_free.set()

    async def run(self) -> None:
        """Until end of input: approvals first, else read a line and act on it."""
        self.console.print("[dim]ollie> ready: ask a question, or /help[/]", highlight=False)
        while True:
            await self._approvals_turn()
            self.prompt_line.draw()
            line = await self._line_or_proposal()
            if line is _PROPOSAL:
                self.prompt_line.leave()
                continue
            self.prompt_line.read_done()
            if line is None:
                self.console.print(
                    "\nend of input: the ollie> prompt is closed and the daemon keeps serving; "
                    "proposals wait for `opik-connect approve|reject`; stop it with Ctrl-C or "
                    "`opik-connect stop`",
                    highlight=False,
                    markup=False,
                )
                return
            assert isinstance(line, str)
            await self.handle_line(line)

    async def handle_line(self, line: str) -> SessionView | None:
        text = line.strip()
        if not text:
            return None
        if text.startswith("/"):
            self._command(text)
            return None
        return await self.ask(text)

    async def ask(self, question: str) -> SessionView:
        """Stream one session; approvals that arrive meanwhile take the terminal first."""
        view = SessionView(self.console)
        try:
            request = AskRequest(question=question, **self.context.model_dump())
        except ValidationError as exc:
            self.console.print(f"[red]{escape(exc.errors()[0]['msg'])}[/]")
            return view
        printer = asyncio.create_task(self._print_session(request, view))
        try:
            while not printer.done():
                await self._approvals_turn()
                await self._until(printer)
        finally:
            if not printer.done():
                printer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await printer
        return view

    async def _print_session(self, request: AskRequest, view: SessionView) -> None:
        try:
            async for event in self.asker(request):
                await self._output_free.wait()
                view.show(event)
        except AskError as exc:
            self.console.print(f"[red]error:[/] {escape(visible(str(exc)))}", highlight=False)

    async def _approvals_turn(self) -> None:
        """If a proposal waits, hand it the terminal (output held back, type-ahead dropped)."""
        if self.approvals is None:
            return
        self.approvals.changed.clear()
        if not self.approvals.waiting():
            return
        self._output_free.clear()
        try:
            self.lines.drop_type_ahead()
            await self.approvals.take_over()
        finally:
            self._output_free.set()

    async def _until(self, task: asyncio.Future[object]) -> None:
        """Wait for the task, or return early when proposals may have arrived."""
        if self.approvals is None:
            await asyncio.wait({task})
            return
        changed = asyncio.ensure_future(self.approvals.changed.wait())
        try:
            await asyncio.wait({task, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()

    async def _line_or_proposal(self) -> str | object | None:
        reader = asyncio.ensure_future(self.lines.read_line())
        await self._until(reader)
        if reader.done():
            return reader.result()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        return _PROPOSAL

    def _command(self, text: str) -> None:
        name, _, arg = text.partition(" ")
        arg = arg.strip()
        if name == "/trace":
            self.context.trace_id = arg or None
        elif name == "/suite":
            self.context.suite = arg or None
        elif name == "/case":
            self.context.case_ids = [*self.context.case_ids, *arg.split()] if arg else []
        elif name == "/help":
            self.console.print(HELP, highlight=False, markup=False)
            return
        elif name != "/context":
            self.console.print(f"[red]unknown command {escape(name)}[/] (try /help)")
            return
        self.show_context()

    def show_context(self) -> None:
        ctx = self.context
        cases = ", ".join(ctx.case_ids) or "-"
        self.console.print(
            f"[dim]context: trace {escape(ctx.trace_id or '-')} · suite "
            f"{escape(ctx.suite or '-')} · cases {escape(cases)}[/]",
            highlight=False,
        )


_PROPOSAL = object()
"""_line_or_proposal's answer when a proposal arrived before a line."""


async def run_ollie_terminal(
    console: Console,
    asker: Asker,
    proposals: ProposalService | None,
    fd: int | None = None,
    prompt_line: PromptLine | None = None,
) -> None:
    """The daemon's terminal: `ollie>` plus approvals on stdin; nothing without a TTY."""
    if fd is None:
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, OSError, ValueError):  # closed, replaced or detached stdin
            fd = -1
    if fd < 0 or not os.isatty(fd):
        console.print(
            "No terminal: ask with `opik-connect ask` from another shell; proposals wait for "
            "`opik-connect approve|reject`."
        )
        return
    approvals = ProposalApprovals(proposals, console, fd) if proposals is not None else None
    terminal = OllieTerminal(
        console, asker, lines=LineReader(fd), approvals=approvals, prompt_line=prompt_line
    )
    await terminal.run()
