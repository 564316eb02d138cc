"""Ollie's tools: their schemas for the Messages API and what each call does.

Every call ends in a ToolOutcome: text for the model and whether it is an error. Errors are JSON
`{"error": {"code", "message", "details"}}`; bridge errors keep the daemon's code and message
as they came, so the model reads exactly what the bridge said and can correct itself.
"""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from opik_connect.agent.ollie.events import (
    DecisionReceived,
    ProposalSent,
    SessionEmitter,
    SuiteRan,
)
from opik_connect.agent.ollie.suite_cases import LastResults, TestCaseSource
from opik_connect.agent.platform.runner_api import Runner
from opik_connect.agent.traces.render import clip, render_span, render_trace
from opik_connect.agent.traces.store import TraceNotFound, TraceStore, TraceStoreError
from opik_connect.protocol import (
    BridgeError,
    ErrorCode,
    ListFilesArgs,
    ProposalDecided,
    ProposeChangeArgs,
    ReadFileArgs,
    RunSuiteArgs,
    SearchFilesArgs,
    SuiteRunSummary,
)

FAILED_OUTPUT_CHARS = 500


class ToolErrorCode(StrEnum):
    """Errors raised by the tools themselves (bridge errors keep protocol.ErrorCode)."""

    NO_TRACE = "no_trace"
    TRACE_NOT_FOUND = "trace_not_found"
    TRACE_UNAVAILABLE = "trace_unavailable"
    SPAN_NOT_FOUND = "span_not_found"
    NO_SUITE = "no_suite"
    DECISION_TIMEOUT = "decision_timeout"


@dataclass
class ToolOutcome:
    content: str
    is_error: bool = False
    error_code: str | None = None


def _error(code: str, message: str, **details: Any) -> ToolOutcome:
    body = {"error": {"code": str(code), "message": message, "details": details}}
    return ToolOutcome(json.dumps(body, ensure_ascii=False, default=str), True, str(code))


def _bridge_error(exc: BridgeError) -> ToolOutcome:
    return _error(exc.code, exc.message, **exc.details)


def _invalid(exc: ValidationError) -> ToolOutcome:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "input"
    return _error(ErrorCode.INVALID_ARGS, f"{where}: {first['msg']}", field=where)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


_EDIT_SCHEMA = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "File path relative to the repo root."},
        "old_string": {
            "type": "string",
            "description": "Exact text now in the file (unique). Empty to create a new file.",
        },
        "new_string": {"type": "string", "description": "Replacement text."},
        "delete": {
            "type": "boolean",
            "description": "Delete the file (old_string '' or its whole content, new_string '').",
        },
    },
    "required": ["path", "old_string", "new_string"],
}

TOOL_DEFINITIONS: list[dict[str, Any]] = [
    {
        "name": "list_files",
        "description": "List the repository's files (git-visible only) matching a glob.",
        "input_schema": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "Glob, default '**/*'."},
                "path": {"type": "string", "description": "Directory to list, default '.'."},
            },
        },
    },
    {
        "name": "read_file",
        "description": "Read a text file by line range (offset is 0-based; limit ≤ 10000 lines).",
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "offset": {"type": "integer", "minimum": 0},
                "limit": {"type": "integer", "minimum": 1, "maximum": 10000},
            },
            "required": ["path"],
        },
    },
    {
        "name": "search_files",
        "description": "Search file contents with a regular expression (ripgrep syntax).",
        "input_schema": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "maxLength": 500},
                "glob": {"type": "string", "description": "Only files matching this glob."},
                "path": {"type": "string", "description": "Directory to search, default '.'."},
            },
            "required": ["pattern"],
        },
    },
    {
        "name": "get_trace",
        "description": (
            "The trace as a compact span tree, depth-first: name, type, duration, model and "
            "error of each span, inputs and outputs clipped. Defaults to the session's trace."
        ),
        "input_schema": {"type": "object", "properties": {"trace_id": {"type": "string"}}},
    },
    {
        "name": "get_span",
        "description": "One span of the trace in full (input, output, metadata, traceback).",
        "input_schema": {
            "type": "object",
            "properties": {"span_id": {"type": "string"}, "trace_id": {"type": "string"}},
            "required": ["span_id"],
        },
    },
    {
        "name": "get_test_cases",
        "description": (
            "The suite items of this session with their assertions and last results. Defaults "
            "to the session's suite and test cases; with no suite, every suite."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "suite": {"type": "string"},
                "case_ids": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
    {
        "name": "propose_change",
        "description": (
            "Propose a change to the user, as exact edits or as a unified diff (exactly one). "
            "It is checked at once (errors come back so you can fix them), then waits for the "
            "user's decision: approved (with the suite result on the fix branch), rejected "
            "(with their reason) or stale (the files changed)."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "title": {"type": "string", "maxLength": 200},
                "reason": {"type": "string", "description": "Root cause and evidence."},
                "edits": {"type": "array", "items": _EDIT_SCHEMA},
                "diff": {"type": "string", "description": "A unified diff."},
                "suite": {"type": "string"},
                "test_case_ids": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["title", "reason"],
        },
    },
    {
        "name": "run_suite",
        "description": (
            "Run a test suite on the user's tree, or on a fix branch; returns pass/fail per "
            "item with the failed assertions. The only thing you can execute."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "suite": {"type": "string"},
                "branch": {
                    "type": "string",
                    "description": "A fix branch; omit for the user's tree.",
                },
                "item_ids": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
]


def tool_definitions_for_request() -> list[dict[str, Any]]:
    """The tools with a prompt-cache breakpoint on the last one (caches all tool definitions)."""
    tools = copy.deepcopy(TOOL_DEFINITIONS)
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    return tools


def summarize_run(run: SuiteRunSummary) -> dict[str, Any]:
    """A suite run for the model: every item's verdict, details only where something failed."""
    items = []
    for item in run.items:
        entry: dict[str, Any] = {
            "item_id": item.item_id,
            "passed": item.passed,
            "runs_passed": item.runs_passed,
            "runs_needed": item.runs_needed,
            "runs_total": item.runs_total,
        }
        failures = []
        for outcome in item.runs:
            failed = [
                {"assertion": v.assertion, "status": v.status, "reason": v.reason}
                for v in outcome.assertions
                if v.status != "passed"
            ]
            if outcome.status == "passed" and not failed:
                continue
            failures.append(
                {
                    "run": outcome.run_index,
                    "status": outcome.status,
                    "error": outcome.error,
                    "output": clip(_json(outcome.output), FAILED_OUTPUT_CHARS),
                    "failed_assertions": failed,
                }
            )
        if failures:
            entry["failures"] = failures
        items.append(entry)
    return {
        "run_id": run.run_id,
        "suite": run.suite,
        "status": run.status,
        "tree": run.tree,
        "commit": run.commit,
        "judge": run.judge,
        "items": items,
    }


_DECISION_NOTES = {
    "approved": "The user approved; the fix is committed on its branch. Check the suite result.",
    "rejected": "The user rejected the proposal. Address their reason, then propose again.",
    "stale": "The files changed before the user decided. Read them again, then propose anew.",
}


@dataclass
class SessionContext:
    """What the session was asked about; tool arguments default to it."""

    trace_id: str | None
    suite: str | None
    case_ids: list[str] = field(default_factory=list)


class OllieTools:
    """Dispatches one session's tool calls to the runner, the trace store and the test cases."""

    def __init__(
        self,
        *,
        runner: Runner,
        traces: TraceStore,
        cases: TestCaseSource,
        context: SessionContext,
        emitter: SessionEmitter,
        last_results: LastResults | None = None,
        decision_timeout_s: float | None = None,
    ) -> None:
        self.runner = runner
        self.traces = traces
        self.cases = cases
        self.context = context
        self.emitter = emitter
        self.last_results = last_results or LastResults()
        self.decision_timeout_s = decision_timeout_s
        self.proposal_ids: list[str] = []
        self.decisions: dict[str, str] = {}
        self._handlers = {
            "list_files": self._list_files,
            "read_file": self._read_file,
            "search_files": self._search_files,
            "get_trace": self._get_trace,
            "get_span": self._get_span,
            "get_test_cases": self._get_test_cases,
            "propose_change": self._propose_change,
            "run_suite": self._run_suite,
        }

    async def call(self, name: str, tool_input: dict[str, Any]) -> ToolOutcome:
        handler = self._handlers.get(name)
        if handler is None:
            return _error(ErrorCode.UNKNOWN_TYPE, f"no tool named {name!r}", tool=name)
        try:
            return await handler(tool_input)
        except ValidationError as exc:
            return _invalid(exc)
        except BridgeError as exc:
            return _bridge_error(exc)

    async def _list_files(self, tool_input: dict[str, Any]) -> ToolOutcome:
        result = await self.runner.list_files(ListFilesArgs.model_validate(tool_input))
        return ToolOutcome(result.model_dump_json())

    async def _read_file(self, tool_input: dict[str, Any]) -> ToolOutcome:
        result = await self.runner.read_file(ReadFileArgs.model_validate(tool_input))
        return ToolOutcome(result.model_dump_json())

    async def _search_files(self, tool_input: dict[str, Any]) -> ToolOutcome:
        result = await self.runner.search_files(SearchFilesArgs.model_validate(tool_input))
        return ToolOutcome(result.model_dump_json())

    async def _trace(self, tool_input: dict[str, Any]) -> Any:
        trace_id = tool_input.get("trace_id") or self.context.trace_id
        if not trace_id:
            return _error(ToolErrorCode.NO_TRACE, "this session has no trace; pass trace_id")
        try:
            return await self.traces.get(str(trace_id))
        except TraceNotFound as exc:
            return _error(ToolErrorCode.TRACE_NOT_FOUND, str(exc), trace_id=trace_id)
        except TraceStoreError as exc:
            return _error(ToolErrorCode.TRACE_UNAVAILABLE, str(exc), trace_id=trace_id)

    async def _get_trace(self, tool_input: dict[str, Any]) -> ToolOutcome:
        record = await self._trace(tool_input)
        if isinstance(record, ToolOutcome):
            return record
        return ToolOutcome(render_trace(record))

    async def _get_span(self, tool_input: dict[str, Any]) -> ToolOutcome:
        record = await self._trace(tool_input)
        if isinstance(record, ToolOutcome):
            return record
        span_id = str(tool_input.get("span_id", ""))
        span = record.span(span_id)
        if span is None:
            return _error(
                ToolErrorCode.SPAN_NOT_FOUND,
                f"no span {span_id!r} in trace {record.trace.id}; get_trace lists span ids",
                span_id=span_id,
            )
        return ToolOutcome(render_span(span))

    async def _get_test_cases(self, tool_input: dict[str, Any]) -> ToolOutcome:
        suite = tool_input.get("suite") or self.context.suite
        wanted = list(tool_input.get("case_ids") or self.context.case_ids)
        cases = self.last_results.attach(await self.cases.test_cases(suite))
        if wanted:
            cases = [case for case in cases if case.id in wanted]
        found = {case.id for case in cases}
        body = {
            "test_cases": [case.model_dump(mode="json") for case in cases],
            "missing_case_ids": [case_id for case_id in wanted if case_id not in found],
        }
        return ToolOutcome(_json(body))

    async def _propose_change(self, tool_input: dict[str, Any]) -> ToolOutcome:
        data = dict(tool_input)
        data.setdefault("trace_id", self.context.trace_id)
        data.setdefault("suite", self.context.suite)
        if not data.get("test_case_ids"):
            data["test_case_ids"] = list(self.context.case_ids)
        args = ProposeChangeArgs.model_validate(data)
        proposed = await self.runner.propose_change(args)
        self.proposal_ids.append(proposed.proposal_id)
        await self.emitter.emit(
            ProposalSent,
            proposal_id=proposed.proposal_id,
            title=args.title,
            files=proposed.files,
            diff=proposed.diff,
        )
        try:
            async with asyncio.timeout(self.decision_timeout_s):
                decided = await self.runner.wait_decision(proposed.proposal_id)
        except TimeoutError:
            return _error(
                ToolErrorCode.DECISION_TIMEOUT,
                f"the user has not decided within {self.decision_timeout_s}s; "
                "the proposal stays pending",
                proposal_id=proposed.proposal_id,
            )
        return await self._decision(decided)

    async def _decision(self, decided: ProposalDecided) -> ToolOutcome:
        for run in decided.suite_results:
            self.last_results.record(run)
        self.decisions[decided.proposal_id] = decided.decision
        await self.emitter.emit(
            DecisionReceived,
            proposal_id=decided.proposal_id,
            decision=decided.decision,
            reason=decided.reason,
            branch=decided.branch,
            suite_statuses={run.suite: run.status for run in decided.suite_results},
        )
        body = {
            "proposal_id": decided.proposal_id,
            "decision": decided.decision,
            "reason": decided.reason,
            "branch": decided.branch,
            "commit": decided.commit,
            "suite_results": [summarize_run(run) for run in decided.suite_results],
            "note": _DECISION_NOTES[decided.decision],
        }
        return ToolOutcome(_json(body))

    async def _run_suite(self, tool_input: dict[str, Any]) -> ToolOutcome:
        data = dict(tool_input)
        if not data.get("suite"):
            if not self.context.suite:
                return _error(ToolErrorCode.NO_SUITE, "this session has no suite; pass suite")
            data["suite"] = self.context.suite
        run = await self.runner.run_suite(RunSuiteArgs.model_validate(data))
        self.last_results.record(run)
        await self.emitter.emit(
            SuiteRan, run_id=run.run_id, suite=run.suite, status=run.status, tree=run.tree
        )
        return ToolOutcome(_json(summarize_run(run)))
