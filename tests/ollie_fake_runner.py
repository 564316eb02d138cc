"""An in-memory Runner for Ollie's tests: files in a dict, scripted proposals and decisions.

The real runner (a websocket to a daemon) is tested elsewhere; this one lets a test say exactly
what each proposal returns (a BridgeError or pending) and what the user decides.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from opik_connect.connect.sandbox.list_entries import compile_fnmatch, list_entries
from opik_connect.protocol import (
    BridgeError,
    ErrorCode,
    FileStat,
    ItemResult,
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
    SearchMatch,
    SuiteRunSummary,
)
from opik_connect.protocol.reads import MAX_READ_LINES


def suite_run(
    suite: str, passed: bool, *, tree: str = "user", run_id: str = "run-1"
) -> SuiteRunSummary:
    item = ItemResult(
        item_id="refund-annual", passed=passed, runs_passed=int(passed), runs_needed=1, runs_total=1
    )
    return SuiteRunSummary(
        run_id=run_id,
        suite=suite,
        status="passed" if passed else "failed",
        tree=tree,
        items=[item],
        started_at="2026-03-02T10:00:00Z",
        duration_s=0.5,
        judge="none",
    )


class FakeRunner:
    runner_id = "runner-test"
    name = "fake"
    project = "support-qa"

    def __init__(
        self,
        files: dict[str, str],
        *,
        proposals: list[BridgeError | str] | None = None,
        decisions: dict[str, ProposalDecided] | None = None,
        suite_runs: list[SuiteRunSummary] | None = None,
    ) -> None:
        self.files = files
        self.proposals = list(proposals or [])
        """Each propose_change takes the next: a BridgeError to raise, or a proposal id."""
        self.decisions = decisions or {}
        """Proposal id -> decision; an id with none never decides (wait_decision hangs)."""
        self.suite_runs = list(suite_runs or [])
        self.calls: list[tuple[str, Any]] = []
        self.waiting = asyncio.Event()
        """Set once someone waits for a decision."""

    async def read_file(self, args: ReadFileArgs) -> ReadFileResult:
        self.calls.append(("read_file", args))
        if args.path not in self.files:
            raise BridgeError(ErrorCode.FILE_NOT_FOUND, f"File not found: {args.path}")
        lines = self.files[args.path].splitlines(keepends=True)
        limit = min(args.limit, MAX_READ_LINES)
        chunk = lines[args.offset : args.offset + limit]
        return ReadFileResult(
            content="".join(chunk),
            total_lines=len(lines),
            truncated=args.offset + limit < len(lines),
        )

    async def list_files(self, args: ListFilesArgs) -> ListFilesResult:
        self.calls.append(("list_files", args))
        base = "" if args.path in (".", "") else args.path.strip("/")
        pattern = compile_fnmatch(args.pattern) if args.pattern else None
        return list_entries(sorted(self.files), base, args.depth, pattern)

    async def search_files(self, args: SearchFilesArgs) -> SearchFilesResult:
        self.calls.append(("search_files", args))
        regex = re.compile(args.pattern)
        matches = [
            SearchMatch(file=path, line=number, content=line)
            for path, text in sorted(self.files.items())
            for number, line in enumerate(text.splitlines(), start=1)
            if regex.search(line)
        ]
        return SearchFilesResult(matches=matches, total_matches=len(matches), truncated=False)

    async def propose_change(self, args: ProposeChangeArgs) -> ProposeChangeResult:
        self.calls.append(("propose_change", args))
        outcome = self.proposals.pop(0)
        if isinstance(outcome, BridgeError):
            raise outcome
        path = (args.edits or [])[0].path if args.edits else "agent.py"
        return ProposeChangeResult(
            proposal_id=outcome,
            diff=f"--- a/{path}\n+++ b/{path}\n",
            files=[FileStat(path=path, added=1, removed=1)],
        )

    async def wait_decision(self, proposal_id: str) -> ProposalDecided:
        self.calls.append(("wait_decision", proposal_id))
        self.waiting.set()
        decided = self.decisions.get(proposal_id)
        if decided is None:
            await asyncio.Event().wait()
        assert decided is not None
        return decided

    async def run_suite(self, args: RunSuiteArgs) -> SuiteRunSummary:
        self.calls.append(("run_suite", args))
        if not self.suite_runs:
            raise BridgeError(ErrorCode.SUITE_NOT_FOUND, f"no suite {args.suite!r}")
        return self.suite_runs.pop(0)
