"""What the platform side can ask of one connected daemon. Ollie's tools call only this."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

from pydantic import BaseModel

from opik_connect import protocol as p


class Runner(Protocol):
    """A paired daemon. Every method raises protocol.BridgeError with the daemon's error code."""

    runner_id: str
    name: str
    project: str

    async def read_file(self, args: p.ReadFileArgs) -> p.ReadFileResult: ...

    async def list_files(self, args: p.ListFilesArgs) -> p.ListFilesResult: ...

    async def search_files(self, args: p.SearchFilesArgs) -> p.SearchFilesResult: ...

    async def propose_change(self, args: p.ProposeChangeArgs) -> p.ProposeChangeResult: ...

    async def wait_decision(self, proposal_id: str) -> p.ProposalDecided:
        """Wait (under the caller's asyncio.timeout) until the user decides."""
        ...

    async def run_suite(self, args: p.RunSuiteArgs) -> p.SuiteRunSummary: ...


class CommandCalls(ABC):
    """The Runner's commands as typed calls of one `call`, which parses each result's model."""

    @abstractmethod
    async def call(
        self, type_name: str, args: BaseModel, *, timeout_s: float | None = None
    ) -> BaseModel:
        """Send one command and await its result, parsed as the command's result model."""

    async def read_file(self, args: p.ReadFileArgs) -> p.ReadFileResult:
        return await self.call("ReadFile", args)  # type: ignore[return-value]

    async def list_files(self, args: p.ListFilesArgs) -> p.ListFilesResult:
        return await self.call("ListFiles", args)  # type: ignore[return-value]

    async def search_files(self, args: p.SearchFilesArgs) -> p.SearchFilesResult:
        return await self.call("SearchFiles", args)  # type: ignore[return-value]

    async def propose_change(self, args: p.ProposeChangeArgs) -> p.ProposeChangeResult:
        return await self.call("ProposeChange", args)  # type: ignore[return-value]

    async def run_suite(self, args: p.RunSuiteArgs) -> p.SuiteRunSummary:
        return await self.call("RunSuite", args)  # type: ignore[return-value]
