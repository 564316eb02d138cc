"""`call: run_tests`: the entrypoint is called as `opik.run_tests` calls a task, `task(data)`,
and judged on the result's `input` and `output` as Opik judges them; `suite pull` sets it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from opik_rest_standin import OpikStandIn, opik_standin
from suite_testkit import write_suite
from typer.testing import CliRunner

from opik_connect.cli import app
from opik_connect.connect.suites.llm_judge import JudgeVerdict
from opik_connect.connect.suites.run_records import latest_record
from opik_connect.connect.suites.suite_files import load_suite
from opik_connect.connect.suites.suite_runner import run_suite
from tests.suite_testkit import suite_env

__all__ = ["suite_env"]
pytestmark = pytest.mark.timeout(60)

TASK = """
from opik import track

@track(entrypoint=True)
def task(data):
    mode = data.get("mode")
    if mode == "shaped":
        return {"input": {"asked": data["question"]}, "output": "A: " + data["question"]}
    if mode == "half":
        return {"output": "only an output"}
    return "{}: {}".format(data["id"], data["question"])
"""

SUITE = """
name: s
call: run_tests
items:
  - id: bare
    data: {question: refunds}
    assertions: [{equals: "bare: refunds"}, "Mentions refunds"]
  - id: shaped
    data: {question: hi, mode: shaped}
    assertions: [{equals: "A: hi"}, "Answers"]
  - id: half
    data: {question: hi, mode: half}
"""


class RecordingJudge:
    """Agrees with everything; keeps the input and output it was shown, by output."""

    label = "fake:recording"

    def __init__(self) -> None:
        self.seen: list[tuple[Any, Any]] = []

    async def judge(
        self, *, input: dict[str, Any], output: Any, assertions: list[str]
    ) -> list[JudgeVerdict]:
        self.seen.append((input, output))
        return [JudgeVerdict(value=True, reason="fine") for _ in assertions]


def make_task_project(tmp_path: Path, suite: str = SUITE) -> Path:
    root = tmp_path / "proj"
    (root / "bot").mkdir(parents=True)
    (root / "bot" / "__init__.py").write_text("")
    (root / "bot" / "task.py").write_text(TASK)
    write_suite(root, "s", suite)
    return root


async def test_run_tests_mode_calls_task_with_data_and_judges_input_and_output(
    suite_env: Path,
) -> None:
    root = make_task_project(suite_env)
    judge = RecordingJudge()
    summary = await run_suite(root, "s", judge=judge, workers=2)
    by_id = {item.item_id: item for item in summary.items}
    assert by_id["bare"].passed and by_id["shaped"].passed
    assert by_id["bare"].runs[0].output == "bare: refunds"
    assert sorted(judge.seen, key=repr) == sorted(
        [
            ({"question": "refunds", "id": "bare"}, "bare: refunds"),
            ({"asked": "hi"}, "A: hi"),
        ],
        key=repr,
    ), "a bare value is judged against the item's data (with its id), a dict on its own input"
    half = by_id["half"]
    assert not half.passed and summary.status == "failed"
    assert half.runs[0].status == "failed"
    assert "must return a dict with 'input' and 'output' keys" in (half.runs[0].error or "")
    assert "missing: ['input']" in (half.runs[0].error or "")


async def test_the_default_call_spreads_data_as_keyword_arguments(suite_env: Path) -> None:
    root = make_task_project(
        suite_env,
        """
        name: s
        items:
          - {id: bare, data: {question: refunds}}
        """,
    )
    summary = await run_suite(root, "s", judge=None, workers=1)
    (run,) = summary.items[0].runs
    assert run.status == "failed"
    assert "unexpected keyword argument 'question'" in (run.error or "")


def test_an_unknown_call_mode_is_a_suite_error_naming_the_line(suite_env: Path) -> None:
    root = make_task_project(suite_env, SUITE.replace("call: run_tests", "call: positional"))
    result = CliRunner().invoke(app, ["suite", "run", "s", "--root", str(root)])
    assert result.exit_code == 2, result.output
    assert "suite_invalid" in result.output and "s.yaml:2: call" in result.output


@pytest.fixture
def opik(suite_env: Path, monkeypatch: pytest.MonkeyPatch) -> OpikStandIn:
    with opik_standin(api_key="key-1", workspace="team") as standin:
        monkeypatch.setenv("OPIK_URL_OVERRIDE", standin.url)
        monkeypatch.setenv("OPIK_API_KEY", "key-1")
        monkeypatch.setenv("OPIK_WORKSPACE", "team")
        yield standin


def test_a_pulled_suite_runs_its_task_as_run_tests_would(
    suite_env: Path, opik: OpikStandIn
) -> None:
    here = suite_env / "here"
    write_suite(
        here,
        "support",
        """
        items:
          - id: refunds
            data: {question: refunds}
            assertions: [The answer mentions refunds]
        """,
    )
    there = make_task_project(suite_env / "there", "items: []\n")
    runner = CliRunner()
    pushed = runner.invoke(app, ["suite", "push", "support", "--root", str(here)])
    assert pushed.exit_code == 0, pushed.output
    pulled = runner.invoke(app, ["suite", "pull", "support", "--root", str(there)])
    assert pulled.exit_code == 0, pulled.output
    assert load_suite(there, "support").call == "run_tests"
    assert "call: run_tests" in (there / ".opik" / "suites" / "support.yaml").read_text()
    ran = runner.invoke(
        app, ["suite", "run", "support", "--root", str(there)], env={"COLUMNS": "200"}
    )
    assert ran.exit_code == 0, ran.output
    assert "PASSED 1/1 items passed" in ran.output
    record = latest_record(there, "support")
    assert record is not None
    assert record.summary.items[0].runs[0].output == "refunds: refunds", "task(data), id added"


async def test_the_real_sdk_traces_a_run_tests_task_with_the_runs_tags(
    suite_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`opik_args` rides along a positional `data`: the SDK still takes the run's tags."""
    root = make_task_project(suite_env, SUITE.split("  - id: shaped")[0])
    (root / "pyproject.toml").write_text(f'[tool.opik-connect]\npython = "{sys.executable}"\n')
    monkeypatch.delenv("VIRTUAL_ENV")
    monkeypatch.setenv("OPIK_SENTRY_ENABLE", "false")
    monkeypatch.setenv("OPIK_ANALYTICS_ENABLE", "false")
    with opik_standin() as standin:
        monkeypatch.setenv("OPIK_URL_OVERRIDE", standin.url)
        summary = await run_suite(root, "s", judge=None, workers=1)
    assert summary.status == "passed"
    (trace,) = [t for t in standin.traces.values() if t.get("name") == "task"]
    assert trace["input"] == {"data": {"question": "refunds", "id": "bare"}}
    assert {"suite:s", "item:bare", "run:1"} <= set(trace["tags"])


def test_suite_add_unwraps_a_task_data_trace_for_a_run_tests_suite(suite_env: Path) -> None:
    """The SDK logs `task(data)`'s input as `{"data": {...}}`: the item's data is the inner dict."""
    root = make_task_project(suite_env, "call: run_tests\nitems: []\n")
    trace = suite_env / "trace.json"
    trace.write_text(
        json.dumps(
            {
                "id": "0197aaaa-bbbb-7ccc-8ddd-eeeeffff0000",
                "name": "task",
                "start_time": "2026-11-24T09:00:00.000Z",
                "input": {"data": {"question": "refunds"}},
            }
        )
    )
    runner = CliRunner()
    added = runner.invoke(
        app, ["suite", "add", "s", "--trace", str(trace), "--id", "r", "--root", str(root)]
    )
    assert added.exit_code == 0, added.output
    suite = load_suite(root, "s")
    assert (suite.call, suite.items[0].data) == ("run_tests", {"question": "refunds"})
    shown = runner.invoke(app, ["suite", "show", "s", "--root", str(root)], env={"COLUMNS": "200"})
    assert "call: run_tests (the entrypoint gets each item's data whole" in shown.output
    ran = runner.invoke(app, ["suite", "run", "s", "--root", str(root)])
    assert ran.exit_code == 0, ran.output
    record = latest_record(root, "s")
    assert record is not None and record.summary.items[0].runs[0].output == "r: refunds"
