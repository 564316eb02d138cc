"""Run one suite against one tree: items x runs in parallel, judged, summed up and recorded.

Pass rules, as in Opik: a run passes when every assertion holds; an item passes when at least
`pass_threshold` of its `runs_per_item` runs pass; the suite passes when every item passes.
Beyond Opik, a run whose judge gave no usable verdict is `error`, never a pass; an item that only
misses its threshold because of such runs makes the suite `error` (inconclusive), not `failed`.
Assertions `skipped` for want of a judge do not fail a run; the summary's judge is then 'none',
as it is when no assertion of the run needs a judge.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from opik_connect.config import load_opik_settings, load_project_config
from opik_connect.connect.suites.agent_python import AgentPython, probe_agent_python
from opik_connect.connect.suites.agent_workers import CallOutcome, WorkerPool
from opik_connect.connect.suites.assertions import assertion_kind, evaluate
from opik_connect.connect.suites.entrypoint import EntrypointSpec, find_entrypoint
from opik_connect.connect.suites.llm_judge import (
    AnthropicJudge,
    Judge,
    JudgeError,
    judge_from_config,
)
from opik_connect.connect.suites.run_records import USER_TREE, RunRecord, new_run_id, save_record
from opik_connect.connect.suites.suite_files import CALL_RUN_TESTS, Suite, SuiteItem, load_suite
from opik_connect.connect.suites.suite_tracing import (
    SuiteTracing,
    TraceSink,
    run_trace_args,
    suite_tracing,
)
from opik_connect.git_runner import GitError, run_async
from opik_connect.protocol import (
    AssertionVerdict,
    BridgeError,
    ErrorCode,
    ItemResult,
    RunOutcome,
    RunStatus,
    SuiteRunSummary,
)

NO_JUDGE = "none"
NO_JUDGE_REASON = "no judge"
MAX_OUTPUT_CHARS = 2000
"""Outputs and errors are cut to this on the wire: 300 runs must still fit one 1 MiB frame."""
DEFAULT_RUN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RunProgress:
    """One finished run, for progress displays (rich bar in the CLI, events in the daemon)."""

    suite: str
    item_id: str
    run_index: int
    status: RunStatus
    done: int
    total: int


ProgressCallback = Callable[[RunProgress], None]
HeaderCallback = Callable[[list[str]], None]


def default_workers() -> int:
    """Agents mostly wait on model APIs, so a few more workers than cores pays off."""
    return max(2, min(16, 2 * (os.cpu_count() or 1)))


async def run_suite(
    root: Path,
    name: str,
    *,
    tree: Path | None = None,
    tree_label: str = USER_TREE,
    item_ids: list[str] | None = None,
    first_items: list[str] | None = None,
    workers: int | None = None,
    judge: Judge | Literal["auto"] | None = "auto",
    progress: ProgressCallback | None = None,
    run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
    proposal_id: str | None = None,
    header: HeaderCallback | None = None,
    trace_sink: TraceSink | None = None,
) -> SuiteRunSummary:
    """Run suite `name` as found in `tree` (default: the user's tree at `root`) and record it.

    `judge="auto"` builds the project's judge from config and env (None without a key);
    `first_items` are run and listed first (the items a fix was meant to repair); `header`
    receives the lines a suite header shows (the agent's interpreter, where traces go);
    `trace_sink` (the daemon's platform sink) takes the traces when no Opik server is configured.
    Raises BridgeError for problems with the suite, the entrypoint or the agent's environment,
    never for the agent's own behaviour.
    """
    root, tree, suite, spec = await asyncio.to_thread(_prepare, root, name, tree)
    items = _select_items(suite, item_ids, first_items)
    agent = await probe_agent_python(root)
    tracing = await asyncio.to_thread(_tracing, root, trace_sink)
    if header is not None:
        header(header_lines(agent, tracing))
    owned = await asyncio.to_thread(judge_from_config, root) if judge == "auto" else None
    active: Judge | None = owned if judge == "auto" else judge
    size = workers or default_workers()
    total = sum(suite.policy_for(item).runs_per_item for item in items)
    started_at = datetime.now(UTC).isoformat()
    clock = time.monotonic()
    commit, dirty = await _git_state(tree)
    branch = None if tree_label == USER_TREE else tree_label
    run_id = new_run_id()
    done = 0

    async def run_one(
        pool: WorkerPool, gate: asyncio.Semaphore, item: SuiteItem, index: int
    ) -> RunOutcome:
        nonlocal done
        async with gate:
            trace = run_trace_args(suite.name, item.id, index, commit, branch, run_id)
            outcome = await _run_once(pool, suite, item, index, active, trace)
        done += 1
        if progress is not None:
            progress(RunProgress(suite.name, item.id, index, outcome.status, done, total))
        return outcome

    try:
        async with WorkerPool(
            tree,
            spec,
            size,
            run_timeout=run_timeout_s,
            python=agent.path,
            env=tracing.env,
            call=suite.call,
        ) as pool:
            await pool.warm()
            gate = asyncio.Semaphore(size)
            per_item = [
                [run_one(pool, gate, item, i) for i in range(suite.policy_for(item).runs_per_item)]
                for item in items
            ]
            outcomes = await asyncio.gather(*(asyncio.gather(*runs) for runs in per_item))
    finally:
        if isinstance(owned, AnthropicJudge):
            await owned.aclose()
    results = [
        item_result(suite, item, list(runs)) for item, runs in zip(items, outcomes, strict=True)
    ]
    summary = SuiteRunSummary(
        run_id=run_id,
        suite=suite.name,
        status=suite_status(results),
        commit=commit,
        tree=tree_label,
        items=results,
        started_at=started_at,
        duration_s=round(time.monotonic() - clock, 3),
        judge=active.label if active is not None and _needs_judge(suite, items) else NO_JUDGE,
    )
    record = RunRecord(
        summary=summary,
        tree_path=str(tree),
        branch=branch,
        proposal_id=proposal_id,
        dirty=dirty,
        entrypoint=spec.label,
        python=agent.path,
    )
    await asyncio.to_thread(save_record, root, record)
    return summary


def _needs_judge(suite: Suite, items: list[SuiteItem]) -> bool:
    """A run only names its judge when some assertion went to it, so the same suite says
    `judge: none` from the CLI and from a fix-branch rerun whether a key is set or not."""
    return any(isinstance(a, str) for item in items for a in suite.assertions_for(item))


def _prepare(root: Path, name: str, tree: Path | None) -> tuple[Path, Path, Suite, EntrypointSpec]:
    """The file work before a run (suite and entrypoint from the tree under test)."""
    root = root.resolve()
    tree = (tree or root).resolve()
    suite = load_suite(tree, name)
    return root, tree, suite, find_entrypoint(tree, suite.entrypoint)


def _tracing(root: Path, sink: TraceSink | None) -> SuiteTracing:
    return suite_tracing(root, load_project_config(root), load_opik_settings(), sink=sink)


def header_lines(agent: AgentPython, tracing: SuiteTracing) -> list[str]:
    """What every suite header says: which Python runs the agent, and where its traces go."""
    if agent.opik_version is None:
        return [agent.header, agent.opik_line]
    return [agent.header, f"{agent.opik_line}; {tracing.destination}"]


def _select_items(
    suite: Suite, item_ids: list[str] | None, first_items: list[str] | None
) -> list[SuiteItem]:
    items = list(suite.items)
    if not items:
        # A run of nothing would report PASSED and prove nothing.
        raise BridgeError(ErrorCode.SUITE_INVALID, f"suite {suite.name!r} has no items to run")
    if item_ids:
        known = {item.id for item in items}
        unknown = [i for i in item_ids if i not in known]
        if unknown:
            raise BridgeError(
                ErrorCode.INVALID_ARGS,
                f"suite {suite.name!r} has no item(s) {unknown}; items: {sorted(known)}",
                unknown=unknown,
            )
        items = [item for item in items if item.id in item_ids]
    if first_items:
        rank = {item_id: n for n, item_id in enumerate(first_items)}
        items.sort(key=lambda item: rank.get(item.id, len(rank)))
    return items


async def _run_once(
    pool: WorkerPool,
    suite: Suite,
    item: SuiteItem,
    index: int,
    judge: Judge | None,
    trace: dict[str, Any],
) -> RunOutcome:
    try:
        call = await pool.call(call_data(suite, item), trace)
        if not call.ok or call.result is None:
            return RunOutcome(
                run_index=index,
                status="failed",
                error=_clip_error(call.error),
                duration_s=round(call.duration_s, 3),
                trace_id=call.trace_id,
            )
        verdicts = await _check(suite, item, call, judge)
    except Exception as exc:
        return RunOutcome(run_index=index, status="error", error=f"runner error: {exc!r}")
    return RunOutcome(
        run_index=index,
        status=_run_status(verdicts),
        output=_clip(call.result.get("output")),
        duration_s=round(call.duration_s, 3),
        assertions=verdicts,
        trace_id=call.trace_id,
    )


async def _check(
    suite: Suite, item: SuiteItem, call: CallOutcome, judge: Judge | None
) -> list[AssertionVerdict]:
    """Deterministic assertions locally; natural-language ones in one judge call."""
    result = call.result or {}
    assertions = suite.assertions_for(item)
    verdicts: list[AssertionVerdict | None] = [
        None if isinstance(a, str) else evaluate(a, result) for a in assertions
    ]
    natural = [(n, a) for n, a in enumerate(assertions) if isinstance(a, str)]
    if natural:
        texts = [text for _, text in natural]
        judged = await _judge(
            judge, _judged_input(suite, item, result), result.get("output"), texts
        )
        for (n, _), verdict in zip(natural, judged, strict=True):
            verdicts[n] = verdict
    return [v for v in verdicts if v is not None]


def call_data(suite: Suite, item: SuiteItem) -> dict[str, Any]:
    """What the entrypoint gets: the item's data, plus its id when called as `opik.run_tests`
    calls a task (the SDK passes the item's content with `include_id=True`)."""
    return {**item.data, "id": item.id} if suite.call == CALL_RUN_TESTS else item.data


def _judged_input(suite: Suite, item: SuiteItem, result: dict[str, Any]) -> Any:
    """The judge's `input`: Opik's LLMJudge scores the task result's `input` (the SDK fills it
    with the item's data when the task returns a bare value)."""
    return result.get("input") if suite.call == CALL_RUN_TESTS else item.data


async def _judge(
    judge: Judge | None, input_: Any, output: Any, texts: list[str]
) -> list[AssertionVerdict]:
    if judge is None:
        return [
            AssertionVerdict(assertion=t, kind="llm", status="skipped", reason=NO_JUDGE_REASON)
            for t in texts
        ]
    try:
        answers = await judge.judge(input=input_, output=output, assertions=texts)
    except JudgeError as exc:
        return [
            AssertionVerdict(assertion=t, kind="llm", status="error", reason=str(exc))
            for t in texts
        ]
    return [
        AssertionVerdict(
            assertion=t,
            kind=assertion_kind(t),
            status="passed" if a.value else "failed",
            reason=a.reason,
            confidence=a.confidence,
        )
        for t, a in zip(texts, answers, strict=True)
    ]


def _run_status(verdicts: list[AssertionVerdict]) -> RunStatus:
    statuses = {v.status for v in verdicts}
    if "failed" in statuses:
        return "failed"
    if "error" in statuses:
        return "error"
    return "passed"


def item_result(suite: Suite, item: SuiteItem, runs: list[RunOutcome]) -> ItemResult:
    policy = suite.policy_for(item)
    passed = sum(1 for r in runs if r.status == "passed")
    return ItemResult(
        item_id=item.id,
        description=item.description,
        passed=passed >= policy.pass_threshold,
        runs_passed=passed,
        runs_needed=policy.pass_threshold,
        runs_total=policy.runs_per_item,
        runs=sorted(runs, key=lambda r: r.run_index),
    )


def item_inconclusive(item: ItemResult) -> bool:
    """Not passed, but runs the judge could not decide might have made up the shortfall."""
    errors = sum(1 for r in item.runs if r.status == "error")
    return not item.passed and item.runs_passed + errors >= item.runs_needed


def suite_status(items: list[ItemResult]) -> RunStatus:
    if any(not i.passed and not item_inconclusive(i) for i in items):
        return "failed"
    if any(not i.passed for i in items):
        return "error"
    return "passed"


def _clip_error(error: str | None) -> str | None:
    """The end of an error is the useful part (the exception line, the last output)."""
    if error is None or len(error) <= MAX_OUTPUT_CHARS:
        return error
    return f"[{len(error) - MAX_OUTPUT_CHARS} chars cut] ..." + error[-MAX_OUTPUT_CHARS:]


def _clip(output: Any) -> Any:
    """Keep wire frames small: long outputs are cut to MAX_OUTPUT_CHARS of text."""
    text = output if isinstance(output, str) else json.dumps(output, default=str)
    if len(text) <= MAX_OUTPUT_CHARS:
        return output
    return text[:MAX_OUTPUT_CHARS] + f"... [{len(text) - MAX_OUTPUT_CHARS} more chars]"


async def _git_state(tree: Path) -> tuple[str | None, bool | None]:
    """HEAD and whether the tree has uncommitted changes; (None, None) outside git."""
    try:
        head = await run_async(tree, "rev-parse", "HEAD")
        status = await run_async(tree, "status", "--porcelain", "--untracked-files=no")
    except GitError:
        return None, None
    return head.text, bool(status.text)
