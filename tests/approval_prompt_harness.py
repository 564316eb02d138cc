"""Runs the real approval prompt over a project's journal, for the pseudo-terminal tests."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from proposal_fixtures import check_path_for

from opik_connect.connect.approval_prompt import run_approval_prompt
from opik_connect.connect.proposals import ProposalService


async def main(root: Path) -> None:
    service = ProposalService(root, check_path=check_path_for(root))
    await run_approval_prompt(service)
    print("PROMPT DONE", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
