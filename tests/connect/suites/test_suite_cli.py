"""`opik-connect suite`: exit codes 0 pass / 1 fail / 2 error through a real process; list, show
and add in-process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fixtures.scripted_messages_api import ScriptedMessagesAPI, tool_turn
from opik_connect.cli import app
from opik_connect.connect.suites.llm_judge import VERDICT_TOOL
from opik_connect.connect.suites.run_records import RunRecord, save_record
from opik_connect.connect.suites.suite_files import load_suite
from opik_connect.protocol import AssertionVerdict, ItemResult, RunOutcome, SuiteRunSummary
from tests.suite_testkit import make_project, suite_env, write_suite

__all__ = ["suite_env"]

REPO = Path(__file__).resolve().parents[3]
TRACE = REPO / "fixtures" / "example_traces" / "01a20cc8-8e80-7db4-9391-3add8bd68e37.json"


def cli(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "opik_connect.cli", "suite", *args, "--root", str(root)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=60,
        check=False,
    )


@pytest.mark.timeout(90)
def test_run_exit_codes(suite_env: Path) -> None:
    root = make_project(
        suite_env,
        """
        name: s
        items:
          - {id: good, data: {question: alpha}, assertions: [{contains: alpha}]}
          - {id: bad, data: {question: beta}, assertions: [{contains: alpha}, "Is kind"]}
        """,
    )
    passing = cli(root, "run", "s", "--item", "good", "--json", str(suite_env / "out.json"))
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert json.loads((suite_env / "out.json").read_text())["status"] == "passed"

    failing = cli(root, "run", "s", "--workers", "2")
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "output does not contain 'alpha'" in failing.stdout
    assert "NOT judged" in failing.stdout, "the missing judge is announced loudly"

    write_suite(root, "s", "name: s\nitems: [{id: x, data: {question: beta}, assertions: [x]}]\n")

    with ScriptedMessagesAPI([tool_turn(VERDICT_TOOL, {"verdicts": []})]) as api:
        errored = cli(
            root, "run", "s", env={"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": api.url}
        )
    assert errored.returncode == 2, errored.stdout + errored.stderr
    assert "ERROR" in errored.stdout

    missing = cli(root, "run", "nope")
    assert missing.returncode == 2
    assert "suite_not_found" in missing.stderr


def test_list_show_and_add_from_a_trace_file(suite_env: Path) -> None:
    root = make_project(suite_env, "name: s\nitems: [{id: a, data: {question: q}}]\n")
    write_suite(root, "broken", "items: [{id: a, nope: 1}]\n")
    runner = CliRunner()
    listed = runner.invoke(app, ["suite", "list", "--root", str(root)])
    assert listed.exit_code == 0
    assert "broken" in listed.output and "invalid" in listed.output

    added = runner.invoke(
        app,
        [
            "suite",
            "add",
            "regress",
            "--trace",
            str(TRACE),
            "--assert",
            "States the refund window",
            "--root",
            str(root),
        ],
    )
    assert added.exit_code == 0, added.output
    suite = load_suite(root, "regress")
    (item,) = suite.items
    assert item.id == "trace-01a20cc8"
    assert item.data == {
        "question": "I received order A1002 last week. Can I still return it for a refund?",
        "customer_id": "C-1002",
    }
    assert item.assertions == ["States the refund window"]
    again = runner.invoke(
        app, ["suite", "add", "regress", "--trace", str(TRACE), "--root", str(root)]
    )
    assert again.exit_code == 0
    assert [i.id for i in load_suite(root, "regress").items] == [
        "trace-01a20cc8",
        "trace-01a20cc8-2",
    ]

    shown = runner.invoke(app, ["suite", "show", "regress", "--root", str(root)])
    assert shown.exit_code == 0 and "States the refund window" in shown.output
    missing = runner.invoke(app, ["suite", "show", "nope", "--root", str(root)])
    assert missing.exit_code == 2


def test_add_by_trace_id_from_a_traces_dir(suite_env: Path) -> None:
    root = make_project(suite_env, "name: s\nitems: []\n")
    runner = CliRunner()
    trace_id = "01a20cc8-8e80-7db4-9391-3add8bd68e37"
    args = ["suite", "add", "s", "--trace", trace_id, "--id", "refund", "--root", str(root)]
    added = runner.invoke(app, [*args, "--traces-dir", str(TRACE.parent)])
    assert added.exit_code == 0, added.output
    assert load_suite(root, "s").items[0].id == "refund"
    unknown = runner.invoke(
        app, ["suite", "add", "s", "--trace", "no-such-trace", "--root", str(root)]
    )
    assert unknown.exit_code == 2


def test_show_gives_each_runs_trace_id_and_the_command_that_opens_it(suite_env: Path) -> None:
    root = make_project(suite_env, "name: s\nitems: [{id: a, data: {q: 1}}, {id: b, data: {}}]\n")
    runner = CliRunner()
    never = runner.invoke(app, ["suite", "show", "s", "--root", str(root)])
    assert never.exit_code == 0 and "no runs yet: opik-connect suite run s" in never.output

    def run(index: int, status: str, trace_id: str | None) -> RunOutcome:
        verdicts = (
            []
            if status == "passed"
            else [
                AssertionVerdict(
                    assertion="contains '30 days'",
                    kind="contains",
                    status="failed",
                    reason="output does not contain '30 days'",
                )
            ]
        )
        return RunOutcome(run_index=index, status=status, trace_id=trace_id, assertions=verdicts)

    summary = SuiteRunSummary(
        run_id="20261205T010000-abcd1234",
        suite="s",
        status="failed",
        commit="c0ffee" * 7,
        tree="user",
        items=[
            ItemResult(
                item_id="a",
                passed=False,
                runs_passed=1,
                runs_needed=2,
                runs_total=2,
                runs=[run(0, "passed", "trace-a1"), run(1, "failed", "trace-a2")],
            ),
            ItemResult(
                item_id="b",
                passed=True,
                runs_passed=1,
                runs_needed=1,
                runs_total=1,
                runs=[run(0, "passed", None)],
            ),
        ],
        started_at="2026-12-05T01:00:00+00:00",
        duration_s=1.0,
        judge="none",
    )
    save_record(root, RunRecord(summary=summary, tree_path=str(root)))
    shown = runner.invoke(app, ["suite", "show", "s", "--root", str(root)])
    assert shown.exit_code == 0, shown.output
    out = " ".join(shown.output.split())
    assert "last run on your tree: failed (run 20261205T010000-abcd1234" in out
    assert "run 1 passed trace trace-a1" in out
    assert "run 2 failed trace trace-a2 contains '30 days': output does not contain" in out
    assert "run 1 passed no trace logged" in out
    assert "a run's trace: opik-connect traces show trace-a2" in out
    assert "traces list --tag suite-run:20261205T010000-abcd1234" in out
