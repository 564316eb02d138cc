"""The runner with real worker processes: pass rules, crashes, hangs, isolation, parallelism."""

import stat
from pathlib import Path

import pytest

from opik_connect.connect.suites.run_records import list_records, load_record, records_dir
from opik_connect.connect.suites.suite_files import parse_suite_text
from opik_connect.connect.suites.suite_runner import (
    RunProgress,
    item_result,
    run_suite,
    suite_status,
)
from opik_connect.protocol import AssertionVerdict, BridgeError, ErrorCode, RunOutcome
from tests.suite_testkit import make_project, suite_env, write_agent

__all__ = ["suite_env"]


def outcome(index: int, status: str) -> RunOutcome:
    return RunOutcome(run_index=index, status=status)  # type: ignore[arg-type]


POLICY_SUITE = """
name: p
global_execution_policy: {runs_per_item: 3, pass_threshold: 2}
items:
  - id: global
  - id: strict
    execution_policy: {pass_threshold: 3}
  - id: single
    execution_policy: {runs_per_item: 1, pass_threshold: 1}
"""


def test_policy_arithmetic_three_runs_threshold_two_and_item_overrides() -> None:
    suite = parse_suite_text(POLICY_SUITE, Path("p.yaml"), default_name="p")
    by_id = {item.id: item for item in suite.items}
    two_of_three = [outcome(0, "passed"), outcome(1, "failed"), outcome(2, "passed")]
    result = item_result(suite, by_id["global"], two_of_three)
    assert (result.passed, result.runs_passed, result.runs_needed, result.runs_total) == (
        True,
        2,
        2,
        3,
    )
    assert not item_result(
        suite, by_id["global"], [outcome(0, "passed"), outcome(1, "failed"), outcome(2, "failed")]
    ).passed
    strict = item_result(suite, by_id["strict"], two_of_three)
    assert (strict.passed, strict.runs_needed, strict.runs_total) == (False, 3, 3)
    single = item_result(suite, by_id["single"], [outcome(0, "passed")])
    assert (single.passed, single.runs_total) == (True, 1)
    assert suite_status([result, single]) == "passed"
    assert suite_status([result, strict]) == "failed"
    # Short of the threshold only because the judge could not decide: inconclusive, not failed.
    undecided = item_result(
        suite, by_id["global"], [outcome(0, "passed"), outcome(1, "error"), outcome(2, "failed")]
    )
    assert not undecided.passed
    assert suite_status([result, undecided]) == "error"
    assert suite_status([strict, undecided]) == "failed"


@pytest.mark.timeout(30)
async def test_runs_follow_the_policy_and_are_recorded(suite_env: Path) -> None:
    root = make_project(
        suite_env,
        """
        name: s
        global_assertions: [{not_contains: chatter}]
        global_execution_policy: {runs_per_item: 3, pass_threshold: 2}
        items:
          - id: good
            data: {question: refunds}
            assertions: [{contains: refunds}, {json_path: $.meta.tags, contains: b}, "Polite"]
          - id: wrong
            data: {question: shipping}
            assertions: [{contains: refunds}]
          - id: plain
            data: {question: x, mode: plain}
            assertions: [{equals: plain x}]
            execution_policy: {runs_per_item: 1, pass_threshold: 1}
        """,
    )
    events: list[RunProgress] = []
    summary = await run_suite(root, "s", judge=None, workers=2, progress=events.append)
    items = {i.item_id: i for i in summary.items}
    assert (items["good"].passed, items["good"].runs_passed, items["good"].runs_total) == (
        True,
        3,
        3,
    )
    assert (items["wrong"].passed, items["wrong"].runs_passed) == (False, 0)
    assert items["plain"].passed and items["plain"].runs[0].output == "plain x"
    assert summary.status == "failed" and summary.judge == "none" and summary.tree == "user"
    skipped = [a for a in items["good"].runs[0].assertions if a.kind == "llm"]
    assert skipped == [
        AssertionVerdict(assertion="Polite", kind="llm", status="skipped", reason="no judge")
    ]
    assert items["wrong"].runs[0].assertions[1].reason == "output does not contain 'refunds'"
    assert [e.done for e in events] == list(range(1, 8)) and events[-1].total == 7
    record = load_record(root, summary.run_id)
    assert (
        record is not None
        and record.summary == summary
        and record.entrypoint == "agentpkg.agent:answer"
    )
    path = records_dir(root) / f"{summary.run_id}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [r.summary.run_id for r in list_records(root, suite="s", tree="user")] == [
        summary.run_id
    ]


@pytest.mark.timeout(30)
async def test_crash_and_hang_fail_their_run_and_the_worker_is_replaced(suite_env: Path) -> None:
    root = make_project(
        suite_env,
        """
        name: s
        items:
          - {id: a-raise, data: {question: q1, mode: raise}}
          - {id: b-crash, data: {question: q2, mode: crash}}
          - {id: c-hang, data: {question: q3, mode: hang}}
          - {id: d-after, data: {question: q4}, assertions: [{contains: answer to q4}]}
          - {id: e-long, data: {question: LONG, mode: raise}}
        """.replace("LONG", "x" * 5000),
    )
    # One worker, items in order: the later run only works if dead workers are replaced.
    summary = await run_suite(root, "s", judge=None, workers=1, run_timeout_s=1.5)
    runs = {i.item_id: i.runs[0] for i in summary.items}
    assert runs["a-raise"].status == "failed"
    assert "RuntimeError: the agent broke: q1" in (runs["a-raise"].error or "")
    assert runs["b-crash"].status == "failed"
    assert "worker crashed (exit code 3)" in (runs["b-crash"].error or "")
    assert "agent chatter on stdout" in (runs["b-crash"].error or "")
    assert runs["c-hang"].status == "failed"
    assert "timed out after 1.5s" in (runs["c-hang"].error or "")
    assert runs["d-after"].status == "passed"
    long_error = runs["e-long"].error or ""
    assert len(long_error) < 2100, "errors are cut so a summary fits one wire frame"
    assert long_error.rstrip().endswith("x" * 100), "the end (the exception line) is kept"
    assert summary.status == "failed"


@pytest.mark.timeout(30)
async def test_the_tree_under_test_wins_over_an_installed_copy(
    suite_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editable install puts the user's checkout on sys.path; a fix worktree must still run
    its own code. Here a copy of the same package that says 'installed' is on PYTHONPATH."""
    installed = suite_env / "site"
    write_agent(installed, version="installed")
    monkeypatch.setenv("PYTHONPATH", str(installed))
    root = make_project(
        suite_env,
        "name: s\nitems: [{id: a, data: {question: q}, assertions: [{contains: worktree}]}]\n",
        version="worktree",
    )
    summary = await run_suite(root, "s", judge=None, workers=1)
    assert summary.items[0].runs[0].output == "worktree answer to q"
    assert summary.status == "passed"


@pytest.mark.timeout(30)
async def test_items_run_in_parallel_on_reused_workers(suite_env: Path) -> None:
    items = "\n".join(
        f"  - {{id: i{n}, data: {{question: q{n}, mode: timing, sleep: 0.4}}}}" for n in range(8)
    )
    root = make_project(
        suite_env,
        f"name: s\nglobal_execution_policy: {{runs_per_item: 2, pass_threshold: 2}}\n"
        f"items:\n{items}\n",
    )
    summary = await run_suite(root, "s", judge=None, workers=4)
    assert summary.status == "passed"
    outputs = [run.output for item in summary.items for run in item.runs]
    assert len(outputs) == 16
    # Timestamps come from the entrypoint itself: proof of overlap, not a wall-clock guess.
    spans = [(o["started"], o["ended"]) for o in outputs]
    overlapping = [
        (a, b) for n, a in enumerate(spans) for b in spans[n + 1 :] if a[0] < b[1] and b[0] < a[1]
    ]
    assert overlapping, "no two runs overlapped"
    pids = {o["pid"] for o in outputs}
    assert 1 < len(pids) <= 4, "16 runs share at most 4 reused worker processes"


async def test_a_suite_with_no_items_is_an_error_not_a_pass(suite_env: Path) -> None:
    root = make_project(suite_env, "name: s\nitems: []\n")
    with pytest.raises(BridgeError) as caught:
        await run_suite(root, "s", judge=None, workers=1)
    assert caught.value.code == ErrorCode.SUITE_INVALID
    assert "no items" in caught.value.message
