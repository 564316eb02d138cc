"""Ollie's tools one by one: results, named errors and test cases.

Ollie's tools one by one: bridge results and errors pass through as given, tool errors are
named, test cases come from the suite files (or the caller) with their last results.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from opik_connect.agent.ollie.events import SessionEmitter, SessionEvent
from opik_connect.agent.ollie.suite_cases import (
    LastResults,
    RunnerSuiteCases,
    StaticCases,
    TestCase,
)
from opik_connect.agent.ollie.tool_base import SessionSubject, Tool, ToolInput, ToolState
from opik_connect.agent.ollie.tool_registry import TOOL_DEFINITIONS, TOOLS_BY_NAME
from opik_connect.agent.ollie.tools import OllieTools, ToolOutcome
from opik_connect.agent.traces.store import TraceStore
from opik_connect.protocol import (
    AssertionVerdict,
    BridgeError,
    ErrorCode,
    ItemResult,
    ListFilesArgs,
    ProposalDecided,
    ProposeChangeArgs,
    ReadFileArgs,
    RunOutcome,
    RunSuiteArgs,
    SearchFilesArgs,
    SuiteRunSummary,
)
from opik_connect.protocol.reads import MAX_READ_LINES
from tests.ollie_fake_runner import FakeRunner, suite_run

TRACES = Path(__file__).parents[2] / "trace_fixtures"
SUITE_YAML = """\
name: support
global_assertions: ["Polite"]
items:
  - id: refund-annual
    data: {question: "refunds?"}
    assertions: [{contains: "10 business days"}]
    execution_policy: {runs_per_item: 3, pass_threshold: 2}
  - id: shipping
    data: {question: "shipping?"}
"""


class Tools:
    def __init__(self, runner: FakeRunner, **kwargs: Any) -> None:
        self.events: list[SessionEvent] = []
        subject = kwargs.pop("subject", SessionSubject("tr-refund-0001", "support", []))
        self.tools = OllieTools(
            runner=runner,
            traces=TraceStore(directory=TRACES),
            cases=kwargs.pop("cases", RunnerSuiteCases(runner)),
            subject=subject,
            emitter=SessionEmitter("ses-1", self._sink),
            **kwargs,
        )

    async def _sink(self, event: SessionEvent) -> None:
        self.events.append(event)

    async def __call__(self, name: str, **tool_input: Any) -> ToolOutcome:
        return await self.tools.call(name, tool_input)


def error_of(outcome: ToolOutcome) -> dict[str, Any]:
    assert outcome.is_error
    return json.loads(outcome.content)["error"]


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner({"agent.py": "a = 1\nb = 2\n", ".opik/suites/support.yaml": SUITE_YAML})


def test_every_tool_has_a_schema_the_api_accepts() -> None:
    for tool in TOOL_DEFINITIONS:
        assert set(tool) == {"name", "description", "input_schema"}
        assert tool["input_schema"]["type"] == "object"


async def test_bridge_results_pass_through_as_given(runner: FakeRunner) -> None:
    tools = Tools(runner)
    outcome = await tools("read_file", path="agent.py", offset=1)
    assert not outcome.is_error
    assert outcome.content == "     2\tb = 2\n"
    listing = json.loads((await tools("list_files", pattern="*.py")).content)
    assert listing == {"files": [".opik/", "agent.py"], "total": 2, "truncated": False}
    deep = json.loads((await tools("list_files", pattern="*.yaml", depth=3)).content)
    assert deep["files"] == [".opik/", ".opik/suites/", ".opik/suites/support.yaml"]
    found = json.loads((await tools("search_files", pattern="b =")).content)
    assert found["matches"][0]["file"] == "agent.py" and found["matches"][0]["line"] == 2


async def test_read_file_is_raw_text_with_a_cat_n_gutter() -> None:
    source = 'say = "héllo\\n"  # «quoted»\n\tindented\n' + "".join(f"x{n}\n" for n in range(3, 13))
    tools = Tools(FakeRunner({"a.py": source}))
    outcome = await tools("read_file", path="a.py", limit=3)
    assert outcome.content == (
        '     1\tsay = "héllo\\n"  # «quoted»\n'
        "     2\t\tindented\n"
        "     3\tx3\n"
        "[lines 1-3 of 12; offset=3 for more]\n"
    )
    tail = await tools("read_file", path="a.py", offset=11)
    assert tail.content == "    12\tx12\n"
    past = await tools("read_file", path="a.py", offset=40)
    assert past.content == "[no lines here (the file has 12)]\n"


async def test_bridge_errors_keep_their_code_and_message(runner: FakeRunner) -> None:
    error = error_of(await Tools(runner)("read_file", path="missing.py"))
    assert error == {
        "code": "file_not_found",
        "message": "File not found: missing.py",
        "details": {},
    }


@pytest.mark.parametrize(
    ("name", "tool_input", "code", "field"),
    [
        ("read_file", {}, "invalid_args", "path"),
        ("read_file", {"path": "a", "limit": -1}, "invalid_args", "limit"),
        ("search_files", {"pattern": "x", "regex": True}, "invalid_args", "regex"),
        ("propose_change", {"title": "t", "reason": "r"}, "invalid_args", "input"),
    ],
)
async def test_invalid_input_is_invalid_args_naming_the_field(
    runner: FakeRunner, name: str, tool_input: dict[str, Any], code: str, field: str
) -> None:
    error = error_of(await Tools(runner)(name, **tool_input))
    assert error["code"] == code and error["details"]["field"] == field
    assert not [call for call in runner.calls if call[0] == name]


async def test_unknown_tool_is_unknown_type(runner: FakeRunner) -> None:
    assert error_of(await Tools(runner)("exec", cmd="ls"))["code"] == "unknown_type"


async def test_trace_tools_and_their_errors(runner: FakeRunner) -> None:
    tools = Tools(runner)
    assert (await tools("get_trace")).content.startswith('trace tr-refund-0001 "answer_question"')
    assert "traceback:" in (await tools("get_span", span_id="sp-rank")).content
    assert error_of(await tools("get_span", span_id="sp-x"))["code"] == "span_not_found"
    assert error_of(await tools("get_trace", trace_id="nope"))["code"] == "trace_not_found"
    no_trace = Tools(runner, subject=SessionSubject(None, None, []))
    assert error_of(await no_trace("get_trace"))["code"] == "no_trace"
    other = await no_trace("get_trace", trace_id="tr-huge-0002")
    assert "…[clipped" in other.content


async def test_unreadable_trace_store_is_trace_unavailable(
    runner: FakeRunner, tmp_path: Path
) -> None:
    (tmp_path / "broken.json").write_text("{")
    tools = Tools(runner)
    tools.tools.traces = TraceStore(directory=tmp_path)
    error = error_of(await tools("get_trace"))
    assert error["code"] == "trace_unavailable" and "broken.json" in error["message"]


async def test_test_cases_from_suite_file_with_last_results(runner: FakeRunner) -> None:
    last = suite_run("support", False)
    last.items[0].runs = [
        RunOutcome(
            run_index=0,
            status="failed",
            output={"output": "no idea"},
            assertions=[
                AssertionVerdict(assertion="Polite", kind="llm", status="passed"),
                AssertionVerdict(
                    assertion='{"contains": "10 business days"}',
                    kind="contains",
                    status="failed",
                    reason="not in output",
                ),
            ],
        )
    ]
    tools = Tools(runner, subject=SessionSubject("t", "support", ["refund-annual", "gone"]))
    tools.tools.last_results = LastResults([last])
    body = json.loads((await tools("get_test_cases")).content)
    assert body["missing_case_ids"] == ["gone"]
    (case,) = body["test_cases"]
    assert case["assertions"] == ["Polite", '{"contains": "10 business days"}']
    assert (case["runs_per_item"], case["pass_threshold"]) == (3, 2)
    assert case["last_result"]["passed"] is False
    everything = json.loads((await tools("get_test_cases", suite=None, case_ids=[])).content)
    assert len(everything["test_cases"]) == 1, "the session's case ids still filter"
    no_context = Tools(runner, subject=SessionSubject(None, None, []))
    listed = json.loads((await no_context("get_test_cases")).content)
    assert [c["id"] for c in listed["test_cases"]] == ["refund-annual", "shipping"]


async def test_invalid_or_missing_suite_file_is_a_named_error(runner: FakeRunner) -> None:
    runner.files[".opik/suites/support.yaml"] = (
        "items:\n  - id: a\n    execution_policy: {runs: 2}\n"
    )
    error = error_of(await Tools(runner)("get_test_cases"))
    assert error["code"] == "suite_invalid" and ".opik/suites/support.yaml:3" in error["message"]
    missing = error_of(await Tools(runner)("get_test_cases", suite="other"))
    assert missing["code"] == "file_not_found"


async def test_long_suite_file_is_read_in_pages(runner: FakeRunner) -> None:
    items = "".join(f"  - id: case-{i}\n    data: {{q: {i}}}\n" for i in range(6000))
    runner.files[".opik/suites/big.yaml"] = "name: big\nitems:\n" + items
    cases = await RunnerSuiteCases(runner).test_cases("big")
    assert len(cases) == 6000 and cases[-1].id == "case-5999"
    reads = [args for name, args in runner.calls if name == "read_file"]
    assert [args.offset for args in reads] == list(range(0, 12_001, MAX_READ_LINES))


async def test_injected_test_cases_are_used_as_given(runner: FakeRunner) -> None:
    cases = [TestCase(suite="s", id="c1", assertions=["ok"]), TestCase(suite="t", id="c2")]
    tools = Tools(runner, cases=StaticCases(cases), subject=SessionSubject(None, "s", []))
    body = json.loads((await tools("get_test_cases")).content)
    assert [c["id"] for c in body["test_cases"]] == ["c1"]
    assert runner.calls == []


async def test_run_suite_summarises_failures_and_updates_last_results(runner: FakeRunner) -> None:
    run = SuiteRunSummary(
        run_id="r9",
        suite="support",
        status="failed",
        tree="user",
        items=[
            ItemResult(
                item_id="refund-annual",
                passed=False,
                runs_passed=0,
                runs_needed=1,
                runs_total=1,
                runs=[RunOutcome(run_index=0, status="error", error="Timeout", output="x" * 900)],
            ),
            ItemResult(item_id="shipping", passed=True, runs_passed=1, runs_needed=1, runs_total=1),
        ],
        started_at="2026-03-02T10:00:00Z",
        duration_s=1.0,
        judge="none",
    )
    runner.suite_runs.append(run)
    tools = Tools(runner)
    body = json.loads((await tools("run_suite", item_ids=["refund-annual"])).content)
    assert body["status"] == "failed"
    failure = body["items"][0]["failures"][0]
    assert failure["error"] == "Timeout" and "…[clipped" in failure["output"]
    assert "failures" not in body["items"][1]
    (sent,) = [args for name, args in runner.calls if name == "run_suite"]
    assert sent.suite == "support" and sent.item_ids == ["refund-annual"]
    assert [e.type for e in tools.events] == ["suite_ran"]
    cases = json.loads((await tools("get_test_cases")).content)["test_cases"]
    assert cases[0]["last_result"]["runs"][0]["error"] == "Timeout"


async def test_run_suite_errors(runner: FakeRunner) -> None:
    assert error_of(await Tools(runner)("run_suite"))["code"] == "suite_not_found"
    no_suite = Tools(runner, subject=SessionSubject(None, None, []))
    assert error_of(await no_suite("run_suite"))["code"] == "no_suite"


async def test_stale_decision_tells_the_model_to_reread(runner: FakeRunner) -> None:
    runner.proposals.append("p-1")
    runner.decisions["p-1"] = ProposalDecided(
        proposal_id="p-1", decision="stale", reason="agent.py changed"
    )
    tools = Tools(runner)
    edit = {"path": "agent.py", "old_string": "a = 1", "new_string": "a = 2"}
    outcome = await tools("propose_change", title="t", reason="r", edits=[edit])
    body = json.loads(outcome.content)
    assert (
        not outcome.is_error and body["decision"] == "stale" and "Read them again" in body["note"]
    )
    assert [e.type for e in tools.events] == ["proposal_sent", "decision_received"]


async def test_engine_error_is_returned_with_details(runner: FakeRunner) -> None:
    runner.proposals.append(
        BridgeError(ErrorCode.MATCH_AMBIGUOUS, "old_string occurs 2 times", lines=[1, 5])
    )
    edit = {"path": "agent.py", "old_string": "a", "new_string": "b"}
    tools = Tools(runner)
    error = error_of(await tools("propose_change", title="t", reason="r", edits=[edit]))
    assert error == {
        "code": "match_ambiguous",
        "message": "old_string occurs 2 times",
        "details": {"lines": [1, 5]},
    }
    assert tools.events == [] and tools.tools.proposal_ids == []


async def test_project_without_suites_has_no_test_cases() -> None:
    tools = Tools(FakeRunner({"agent.py": ""}), subject=SessionSubject(None, None, []))
    body = json.loads((await tools("get_test_cases")).content)
    assert body == {"test_cases": [], "missing_case_ids": []}


@pytest.mark.parametrize(
    ("tool", "model"),
    [
        ("read_file", ReadFileArgs),
        ("list_files", ListFilesArgs),
        ("search_files", SearchFilesArgs),
        ("propose_change", ProposeChangeArgs),
    ],
)
def test_bridge_tools_are_shown_the_wire_contract_itself(tool: str, model: type) -> None:
    assert TOOLS_BY_NAME[tool].input_model is model
    assert issubclass(TOOLS_BY_NAME["run_suite"].input_model, RunSuiteArgs)


async def test_a_new_tool_is_one_model_one_function_one_entry(
    runner: FakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    class EchoInput(ToolInput):
        text: str

    async def echo(state: ToolState, args: EchoInput) -> str:
        return f"{state.subject.trace_id}: {args.text}"

    monkeypatch.setitem(TOOLS_BY_NAME, "echo", Tool("echo", "Echo.", EchoInput, echo))
    tools = Tools(runner)
    assert (await tools("echo", text="hi")).content == "tr-refund-0001: hi"
    assert error_of(await tools("echo", text=1))["code"] == "invalid_args"
