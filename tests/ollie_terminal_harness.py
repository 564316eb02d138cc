"""Runs the real `ollie>` prompt with the real approval prompt on a pty, for the pexpect test.

The asker stands in for Ollie: on a question it proposes a change through the ProposalService
(as the daemon's ProposeChange handler would) and waits for the user's decision in the journal.
With PROPOSE_AT_PROMPT=1, a proposal also arrives, announced as the daemon announces it, as soon
as the first `ollie>` prompt waits for a line.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from proposal_fixtures import proposal_service
from rich.console import Console

from opik_connect.connect.fixes.daemon_wiring import proposal_notice
from opik_connect.connect.proposals.service import ProposalService
from opik_connect.connect.terminal.ollie_prompt import run_ollie_terminal
from opik_connect.connect.terminal.prompt_line import PromptLine
from opik_connect.protocol import AskEvent, AskRequest, FileEdit, ProposeChangeArgs

FINAL = {"applied": "approved", "rejected": "rejected", "stale": "stale", "failed": "failed"}


class WatchedPromptLine(PromptLine):
    """Says when the prompt is drawn, so a proposal can arrive while it waits."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.drawn = asyncio.Event()

    def draw(self) -> None:
        super().draw()
        self.drawn.set()


async def propose_at_prompt(service: ProposalService, prompt_line: WatchedPromptLine) -> None:
    await prompt_line.drawn.wait()
    edit = FileEdit(path="notes.txt", old_string="three", new_string="THREE")
    args = ProposeChangeArgs(title="Arrived at the prompt", reason="while idle", edits=[edit])
    result = await service.submit(args)
    prompt_line.notice(proposal_notice(args, result, auto=False))


async def main(root: Path) -> None:
    console = Console()
    service = proposal_service(root)
    prompt_line = WatchedPromptLine(console)
    background = None
    if os.environ.get("PROPOSE_AT_PROMPT"):
        background = asyncio.create_task(propose_at_prompt(service, prompt_line))

    async def asker(request: AskRequest) -> AsyncIterator[AskEvent]:
        yield AskEvent(session_id="s1", seq=1, type="accepted", data={"id": "s1"})
        args = ProposeChangeArgs(
            title="Greet politely",
            reason=f"asked: {request.question} (trace {request.trace_id})",
            edits=[FileEdit(path="agent.py", old_string="'empty'", new_string="'Please ask.'")],
        )
        proposed = await service.submit(args)
        for _ in range(1200):  # the user decides in the approval prompt; the fix gets built
            decided = service.get(proposed.proposal_id).status
            if decided in FINAL:
                break
            await asyncio.sleep(0.05)
        yield AskEvent(
            session_id="s1",
            seq=2,
            type="decision_received",
            data={"proposal_id": proposed.proposal_id, "decision": FINAL.get(decided, decided)},
        )
        yield AskEvent(
            session_id="s1", seq=3, type="result", data={"id": "s1", "status": "completed"}
        )

    await run_ollie_terminal(console, asker, service, prompt_line=prompt_line)
    if background is not None:
        await background
    print("PROMPT DONE", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
