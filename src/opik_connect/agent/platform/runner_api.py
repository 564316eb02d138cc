"""What the platform side can ask of one connected daemon. Ollie's tools call only this."""

from __future__ import annotations

from typing import Protocol

from opik_connect.protocol import (
    ListFilesArgs,
    ListFilesResult,
    ProposalDecided,
    ProposeChangeArgs,
    ProposeChangeResult,
    ReadFileArgs,
    ReadFileResult,
    RunSuiteArgs,
    SearchFilesArgs,
    SearchFilesResult,
    SuiteRunSummary,
)


class Runner(Protocol):
    """A paired daemon. Every method raises protocol.BridgeError with the daemon's error code."""

    runner_id: str
    name: str
    project: str

    async def read_file(self, args: ReadFileArgs) -> ReadFileResult: ...

    async def list_files(self, args: ListFilesArgs) -> ListFilesResult: ...

    async def search_files(self, args: SearchFilesArgs) -> SearchFilesResult: ...

    async def propose_change(self, args: ProposeChangeArgs) -> ProposeChangeResult: ...

    async def wait_decision(self, proposal_id: str) -> ProposalDecided:
        """Wait (under the caller's asyncio.timeout) until the user decides."""
        ...

    async def run_suite(self, args: RunSuiteArgs) -> SuiteRunSummary: ...
