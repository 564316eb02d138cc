"""The tools about test suites: the session's test cases with their last results, and suite runs."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from opik_connect.agent.ollie.events import SuiteRan
from opik_connect.agent.ollie.tool_base import ToolError, ToolErrorCode, ToolInput, ToolState
from opik_connect.agent.traces.render import clip
from opik_connect.protocol import RunSuiteArgs, SuiteRunSummary

FAILED_OUTPUT_CHARS = 500


class GetTestCasesInput(ToolInput):
    suite: str | None = Field(None, description="Defaults to the session's suite.")
    case_ids: list[str] | None = Field(None, description="Defaults to the session's test cases.")


class RunSuiteInput(RunSuiteArgs):
    """The bridge's RunSuite arguments, with the suite defaulting to the session's."""

    suite: str | None = Field(None, description="Defaults to the session's suite.")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


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


async def get_test_cases(state: ToolState, args: GetTestCasesInput) -> str:
    suite = args.suite or state.subject.suite
    wanted = list(args.case_ids or state.subject.case_ids)
    cases = state.last_results.attach(await state.cases.test_cases(suite))
    if wanted:
        cases = [case for case in cases if case.id in wanted]
    found = {case.id for case in cases}
    body = {
        "test_cases": [case.model_dump(mode="json") for case in cases],
        "missing_case_ids": [case_id for case_id in wanted if case_id not in found],
    }
    return _json(body)


async def run_suite(state: ToolState, args: RunSuiteInput) -> str:
    suite = args.suite or state.subject.suite
    if not suite:
        raise ToolError(ToolErrorCode.NO_SUITE, "this session has no suite; pass suite")
    run = await state.runner.run_suite(RunSuiteArgs(**{**dict(args), "suite": suite}))
    state.last_results.record(run)
    await state.emitter.emit(
        SuiteRan, run_id=run.run_id, suite=run.suite, status=run.status, tree=run.tree
    )
    return _json(summarize_run(run))
