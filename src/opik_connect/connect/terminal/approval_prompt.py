"""The terminal prompt where the local user decides on proposals, one at a time, oldest first.

Async all the way: keys are read with `loop.add_reader` on stdin in cbreak mode, so the daemon's
event loop keeps serving the platform's commands while the prompt waits. The pager and $EDITOR run
as asyncio subprocesses with the terminal restored to its normal mode. Without a TTY the prompt
does not start, and proposals stay pending for `opik-connect approve|reject` from elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import sys
import tempfile
import termios
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from opik_connect.connect.child_process import PIPE, spawn_child
from opik_connect.connect.proposals.journal import JournaledProposal
from opik_connect.connect.proposals.service import ProposalService
from opik_connect.connect.proposals.verification import diff_digest
from opik_connect.connect.terminal.visible_text import hidden_characters, visible
from opik_connect.protocol import BridgeError, Verification

PREVIEW_LINES = 40
KEYS_HELP = "[y] approve  [n] reject  [d] whole diff  [e] edit diff  [s] later  [q] stop asking"


def file_stats(record: JournaledProposal) -> Text:
    """`path (+N −M)` per file, coloured."""
    text = Text()
    for stat in record.files:
        marker = {"added": " (new)", "deleted": " (deleted)"}.get(stat.change, "")
        text.append(f"  {visible(stat.path)}{marker} (")
        text.append(f"+{stat.added}", style="green")
        text.append(" ")
        text.append(f"\u2212{stat.removed}", style="red")
        text.append(")\n")
    return text


def _platform_texts(record: JournaledProposal) -> list[str]:
    """Every text of the proposal that the platform chose."""
    args = record.args
    texts = [args.title, args.reason, record.diff, args.trace_id or "", args.suite or ""]
    return texts + list(args.test_case_ids) + [stat.path for stat in record.files]


def hidden_warning(record: JournaledProposal) -> Text | None:
    """A warning line when the proposal holds control or bidi characters (shown, not obeyed)."""
    count = hidden_characters(*_platform_texts(record))
    if not count:
        return None
    return Text(
        f"\u26a0 This proposal holds {count} control or bidi character(s), shown as \u241b, "
        "\u2421 or \u27e8U+XXXX\u27e9. They are part of what would be applied: read closely.\n",
        style="bold red",
    )


VERIFICATION_STYLES = {"verified": "bold green", "regression": "bold red"}


def verification_line(record: JournaledProposal, check: Verification) -> Text:
    """What the suite said about the proposal's build before it was shown, and whether that
    still holds (the diff changed since: an edit, or the files moved under it)."""
    text = Text(visible(check.summary), style=VERIFICATION_STYLES.get(check.status, "bold yellow"))
    if check.diff_sha256 is not None and check.diff_sha256 != diff_digest(record.diff):
        text.append(
            "\n(for an earlier version of this diff: approving builds it and runs the suite again)",
            style="yellow",
        )
    return text + "\n"


def render_proposal(record: JournaledProposal, *, full: bool = False, position: str = "") -> Panel:
    """The proposal as the user sees it: what, why, evidence, files, and the coloured diff.

    Every text from the platform goes through `visible`, so the terminal shows exactly the
    characters that would be applied, and never obeys an escape sequence hidden in them."""
    args = record.args
    head = Text()
    head.append(visible(args.title), style="bold")
    head.append(f"   proposal {record.id}{position}\n", style="dim")
    head.append(visible(args.reason.strip()) + "\n\n")
    if args.trace_id:
        head.append("trace: ", style="dim")
        head.append(visible(args.trace_id) + "\n")
    if args.test_case_ids:
        head.append("test cases: ", style="dim")
        head.append(visible(", ".join(args.test_case_ids)) + "\n")
    if args.suite:
        head.append("suite: ", style="dim")
        head.append(visible(args.suite) + "\n")
    lines = visible(record.diff).split("\n")
    if lines[-1] == "":
        lines.pop()
    shown = lines if full else lines[:PREVIEW_LINES]
    warning = hidden_warning(record)
    parts: list[RenderableType] = [warning] if warning is not None else []
    parts += [head, file_stats(record)]
    if record.verification is not None:
        parts.append(verification_line(record, record.verification))
    from rich.syntax import Syntax  # here: pygments (~2 MB) loads with the first proposal shown

    parts.append(Syntax("\n".join(shown), "diff", theme="ansi_dark", background_color="default"))
    if len(shown) < len(lines):
        parts.append(Text(f"... {len(lines) - len(shown)} more lines: press d", style="dim"))
    parts.append(Text(KEYS_HELP, style="cyan"))
    return Panel(Group(*parts), title="Ollie proposes a change", border_style="yellow")


class TerminalKeys:
    """Single keys (cbreak) and whole lines (cooked) from a TTY, without blocking the loop."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._saved = termios.tcgetattr(fd)

    def __enter__(self) -> TerminalKeys:
        tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc: object) -> None:
        termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    @contextlib.contextmanager
    def cooked(self) -> Iterator[None]:
        """Normal terminal mode, for a line of input, the pager or the editor."""
        termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        try:
            yield
        finally:
            tty.setcbreak(self.fd)

    async def _read(self) -> str:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[str] = loop.create_future()

        def on_readable() -> None:
            if not ready.done():
                ready.set_result(os.read(self.fd, 1024).decode("utf-8", "replace"))

        loop.add_reader(self.fd, on_readable)
        try:
            return await ready
        finally:
            loop.remove_reader(self.fd)

    async def key(self) -> str:
        data = await self._read()
        if not data:
            raise EOFError
        return data[0]

    async def line(self) -> str:
        with self.cooked():
            data = await self._read()
        if not data:
            raise EOFError
        return data.rstrip("\r\n")


class ApprovalPrompt:
    """Shows pending proposals oldest first and records the local user's decision."""

    def __init__(self, service: ProposalService, keys: TerminalKeys, console: Console) -> None:
        self.service = service
        self.keys = keys
        self.console = console
        self.later: set[str] = set()

    def _queue(self) -> list[JournaledProposal]:
        return [r for r in self.service.pending() if r.id not in self.later]

    async def _key_or_change(self) -> str | None:
        """A key, or None when the set of proposals changed while waiting."""
        self.service.changed.clear()
        key_task = asyncio.ensure_future(self.keys.key())
        change_task = asyncio.ensure_future(self.service.changed.wait())
        try:
            done, _ = await asyncio.wait(
                {key_task, change_task}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (key_task, change_task):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        return key_task.result() if key_task in done else None

    async def drain(self) -> bool:
        """Shows waiting proposals one at a time until none is left (True) or q (False)."""
        while queue := self._queue():
            record = queue[0]
            self.console.print(render_proposal(record, position=f" (1 of {len(queue)})"))
            if not await self._decide(record):
                waiting = len(self._queue())
                self.console.print(
                    f"[yellow]Stopped asking; {waiting} proposal(s) stay pending "
                    "(opik-connect fixes --pending).[/yellow]"
                )
                return False
        return True

    async def run(self) -> None:
        """Until q: drain the queue, then wait for a proposal to arrive."""
        while await self.drain():
            self.console.print("[dim]No proposals waiting. (q stops asking)[/dim]")
            while not self._queue():
                if await self._key_or_change() == "q":
                    return

    async def _decide(self, record: JournaledProposal) -> bool:
        """Handles keys for one proposal; False means the user pressed q."""
        while True:
            key = await self._key_or_change()
            if key is None:
                current = self.service.get(record.id)
                if current.status != "pending":
                    self.console.print(f"Proposal {record.id} is now {current.status}.")
                    return True
                continue
            key = key.lower()
            if key == "q":
                return False
            if key == "s":
                self.later.add(record.id)
                self.console.print(f"Later: {record.id} stays pending.")
                return True
            if key == "y":
                await self._approve(record)
                return True
            if key == "n":
                self.console.print("Reason for Ollie (optional, Enter to skip): ", end="")
                reason = await self.keys.line()
                rejecting = self.service.reject(record.id, reason.strip() or None, by="terminal")
                await self._act(rejecting)
                self.console.print(f"[red]Rejected[/red] {record.id}.")
                return True
            if key == "d":
                await self._page(record)
            elif key == "e":
                edited = await self._edit(record)
                if edited is not None:
                    record = edited
                    self.console.print(render_proposal(record))

    async def _act(self, action) -> JournaledProposal | None:
        try:
            return await action
        except BridgeError as exc:
            self.console.print(f"[red]{exc.code.value}[/red]: {escape(visible(exc.message))}")
            return None

    async def _approve(self, record: JournaledProposal) -> None:
        built = record.verification is not None and record.verification.commit is not None
        what = "publishing its verified build" if built else "building the fix branch"
        self.console.print(f"Approving {record.id}: {what}...")
        done = await self._act(self.service.approve(record.id, by="terminal"))
        if done is None:
            return
        if done.status == "applied":
            suite = done.suite_results[-1].status if done.suite_results else "not run"
            self.console.print(
                f"[green]Approved[/green]: branch {escape(visible(done.branch or ''))} at "
                f"{(done.commit or '')[:10]} (suite: {suite})"
            )
        else:
            reason = escape(visible(done.reason or ""))
            self.console.print(f"[yellow]{done.status}[/yellow]: {reason}")

    async def _run_in_terminal(self, argv: list[str], stdin: bytes | None = None) -> int:
        """Run the pager or editor; one that cannot start is reported, never the prompt's end."""
        with self.keys.cooked():
            try:
                proc = await spawn_child(*argv, stdin=PIPE if stdin is not None else None)
            except OSError as exc:
                self.console.print(
                    f"cannot run {argv[0]!r}: {exc.strerror or exc} "
                    "(check $VISUAL, $EDITOR, $PAGER)",
                    markup=False,
                    highlight=False,
                )
                return 127
            await proc.communicate(stdin)
        return proc.returncode or 0

    async def _page(self, record: JournaledProposal) -> None:
        pager = shlex.split(os.environ.get("PAGER") or "less -R")
        with self.console.capture() as capture:
            self.console.print(render_proposal(record, full=True))
        await self._run_in_terminal(pager, capture.get().encode())

    async def _edit(self, record: JournaledProposal) -> JournaledProposal | None:
        """$EDITOR on the diff; the edited diff is re-checked against the files as they are.

        The editor gets the exact diff (control characters included: editors show them as
        such), since what the user saves is what is checked and applied."""
        editor = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
        fd, name = tempfile.mkstemp(prefix=f"opik-{record.id}-", suffix=".diff")
        path = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(record.diff)
            status = await self._run_in_terminal([*editor, name])
            text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        if status != 0 or text == record.diff:
            self.console.print("Diff unchanged.")
            return None
        updated = await self._act(self.service.replace_diff(record.id, text))
        if updated is None:
            self.console.print("The edited diff was refused; the proposal keeps its diff.")
        return updated


async def run_approval_prompt(
    service: ProposalService, console: Console | None = None, stdin: TextIO | None = None
) -> None:
    """The daemon's entry point: runs the prompt until q; returns at once without a TTY."""
    console = console or Console(highlight=False)
    stream = stdin or sys.stdin
    if not stream.isatty():
        console.print(
            "No terminal: proposals stay pending. Decide with `opik-connect approve ID` or "
            "`opik-connect reject ID`."
        )
        return
    with TerminalKeys(stream.fileno()) as keys:
        await ApprovalPrompt(service, keys, console).run()


async def run_auto_approver(service: ProposalService, console: Console | None = None) -> None:
    """--auto-approve, for scripts only: approves every proposal as it arrives."""
    console = console or Console(stderr=True)
    console.print(
        Panel(
            "AUTO-APPROVE IS ON: every change Ollie proposes is committed to a fix branch "
            "without asking. Use only in scripts and CI.",
            style="bold red",
        )
    )
    while True:
        service.changed.clear()
        for record in service.pending():
            try:
                done = await service.approve(record.id, by="auto-approve")
            except BridgeError as exc:
                console.print(
                    f"auto-approve {record.id}: {exc.code.value}: {escape(visible(exc.message))}"
                )
                continue
            console.print(
                f"auto-approved {done.id}: {done.status} {escape(visible(done.branch or ''))}"
            )
        await service.changed.wait()
