"""The `ollie>` prompt: context commands, and a waiting proposal taking the terminal first.

The `ollie>` prompt: context commands shape the request, and a waiting proposal always gets the
terminal first (from a waiting read or a streaming session) with type-ahead dropped. Input comes
through a real pipe, read by the same add_reader code the daemon uses on its tty.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rich.console import Console

from opik_connect.agent.ollie.sessions import OllieSessions
from opik_connect.agent.platform.store import open_platform_store
from opik_connect.connect.terminal.line_input import LineReader
from opik_connect.connect.terminal.ollie_prompt import (
    OllieTerminal,
    embedded_asker,
    run_ollie_terminal,
)
from opik_connect.protocol import AskEvent, AskRequest

pytestmark = pytest.mark.timeout(20)


class Pipe:
    def __init__(self) -> None:
        self.read_fd, write_fd = os.pipe()
        self.write_fd: int | None = write_fd

    def type(self, text: str) -> None:
        assert self.write_fd is not None
        os.write(self.write_fd, text.encode())

    def close(self) -> None:
        if self.write_fd is not None:
            os.close(self.write_fd)
            self.write_fd = None


@pytest.fixture
def pipe():
    made = Pipe()
    yield made
    os.close(made.read_fd)
    made.close()


def console() -> Console:
    return Console(file=io.StringIO(), width=120, force_terminal=False)


def output(terminal: OllieTerminal) -> str:
    return terminal.console.file.getvalue()  # type: ignore[attr-defined]


class ScriptedAsker:
    """Answers each request; `hold` (if set) pauses the stream after 'accepted' until released."""

    def __init__(self, hold: asyncio.Event | None = None) -> None:
        self.requests: list[AskRequest] = []
        self.hold = hold
        self.held = asyncio.Event()

    async def __call__(self, request: AskRequest) -> AsyncIterator[AskEvent]:
        self.requests.append(request)
        yield AskEvent(session_id="s1", seq=1, type="accepted", data={"id": "s1"})
        if self.hold is not None:
            self.held.set()
            await self.hold.wait()
        yield AskEvent(session_id="s1", seq=2, type="tool_called", data={"name": "AFTER_HOLD"})
        yield AskEvent(session_id="s1", seq=3, type="final_answer", data={"text": "ANSWER"})
        yield AskEvent(
            session_id="s1", seq=4, type="result", data={"id": "s1", "status": "completed"}
        )


class FakeApprovals:
    """Stands in for the approval prompt: records when it held the terminal."""

    def __init__(self, console: Console, during=None) -> None:
        self.changed = asyncio.Event()
        self.pending = 0
        self.console = console
        self.during = during
        self.takeovers = 0

    def arrive(self) -> None:
        self.pending += 1
        self.changed.set()

    def waiting(self) -> bool:
        return self.pending > 0

    async def take_over(self) -> None:
        self.takeovers += 1
        self.console.print("APPROVAL START")
        if self.during is not None:
            await self.during()
        self.pending = 0
        self.console.print("APPROVAL DONE")


async def test_context_commands_shape_the_request(pipe: Pipe) -> None:
    asker = ScriptedAsker()
    terminal = OllieTerminal(console(), asker, lines=LineReader(pipe.read_fd))
    pipe.type("/trace t0\n/trace t1\n/suite refunds\n/case c1 c2\n/case c3\n/context\n")
    pipe.type("why did it fail?\n/case\n/trace\n/bogus\n/help\nand now?\n")
    pipe.close()
    await terminal.run()
    first, second = asker.requests
    assert (first.question, first.trace_id, first.suite, first.case_ids) == (
        "why did it fail?",
        "t1",
        "refunds",
        ["c1", "c2", "c3"],
    )
    assert (second.trace_id, second.suite, second.case_ids) == (None, "refunds", [])
    text = output(terminal)
    assert "context: trace t1 · suite refunds · cases c1, c2, c3" in text
    assert "ANSWER" in text and "session s1 completed" in text
    assert "unknown command /bogus" in text and "/suite NAME" in text


async def test_a_proposal_takes_the_terminal_from_a_waiting_prompt(pipe: Pipe) -> None:
    view = console()
    approvals = FakeApprovals(view)
    asker = ScriptedAsker()
    terminal = OllieTerminal(view, asker, lines=LineReader(pipe.read_fd), approvals=approvals)
    running = asyncio.create_task(terminal.run())
    await asyncio.sleep(0.05)  # ollie> is now waiting for a line
    approvals.arrive()
    for _ in range(100):
        if approvals.takeovers:
            break
        await asyncio.sleep(0.01)
    assert approvals.takeovers == 1 and not running.done()
    pipe.type("question after approval\n")
    pipe.close()
    await running
    assert [r.question for r in asker.requests] == ["question after approval"]
    text = output(terminal)
    assert text.index("APPROVAL DONE") < text.index("ANSWER")


async def test_type_ahead_never_reaches_the_approval_and_output_waits(pipe: Pipe) -> None:
    view = console()
    hold = asyncio.Event()
    seen_in_takeover: list[str | None] = []
    reader = LineReader(pipe.read_fd)

    async def during_approval() -> None:
        # Anything typed before the proposal was shown is gone; the session's next event waits.
        hold.set()
        await asyncio.sleep(0.05)
        pipe.type("typed during approval\n")
        seen_in_takeover.append(await reader.read_line())
        pipe.close()

    approvals = FakeApprovals(view, during_approval)
    asker = ScriptedAsker(hold)
    terminal = OllieTerminal(view, asker, lines=reader, approvals=approvals)
    pipe.type("first question\n")
    running = asyncio.create_task(terminal.run())
    await asker.held.wait()
    pipe.type("y\n")  # typed while the session streams: must not answer the approval
    approvals.arrive()
    await running
    assert seen_in_takeover == ["typed during approval"]
    assert [r.question for r in asker.requests] == ["first question"]
    text = output(terminal)
    assert text.index("APPROVAL DONE") < text.index("AFTER_HOLD")


async def test_no_key_is_said_plainly_in_the_prompt(pipe: Pipe, tmp_path: Path) -> None:
    store = await open_platform_store(tmp_path / "p.sqlite3")

    class NoRunners:
        def runners(self) -> list:
            return []

        def runner(self, runner_id: str):
            raise KeyError(runner_id)

    async def never(context):
        raise AssertionError("no session may start without a key")

    sessions = OllieSessions(NoRunners(), store, never, env={})
    terminal = OllieTerminal(console(), embedded_asker(sessions), lines=LineReader(pipe.read_fd))
    pipe.type("why?\n")
    pipe.close()
    await terminal.run()
    await store.close()
    text = output(terminal)
    assert "no_api_key" in text and "export ANTHROPIC_API_KEY=" in text


async def test_without_a_terminal_the_prompt_does_not_start(pipe: Pipe) -> None:
    asker = ScriptedAsker()
    view = console()
    pipe.type("a question nobody may read\n")
    await run_ollie_terminal(view, asker, None, fd=pipe.read_fd)
    assert asker.requests == []
    assert "No terminal" in view.file.getvalue()  # type: ignore[attr-defined]
