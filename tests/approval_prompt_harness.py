"""Runs the real approval prompt over a project's journal, for the pseudo-terminal tests.

With LATE_PROPOSAL_AFTER=<seconds>, a proposal arrives on the same event loop while the prompt
waits for a key, as a ProposeChange from the platform would.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from proposal_fixtures import proposal_service

from opik_connect.connect.proposals.service import ProposalService
from opik_connect.connect.terminal.approval_prompt import run_approval_prompt
from opik_connect.protocol import FileEdit, ProposeChangeArgs


async def late_proposal(service: ProposalService, delay: float) -> None:
    await asyncio.sleep(delay)
    edit = FileEdit(path="notes.txt", old_string="three", new_string="THREE")
    await service.submit(ProposeChangeArgs(title="Late fix", reason="arrived later", edits=[edit]))


async def main(root: Path) -> None:
    service = proposal_service(root)
    delay = os.environ.get("LATE_PROPOSAL_AFTER")
    background = asyncio.create_task(late_proposal(service, float(delay))) if delay else None
    await run_approval_prompt(service)
    if background is not None:
        await background
    print("PROMPT DONE", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
