"""Test cases from traces, through Ollie: draft_test_case turns a trace into a suite item, and
propose_change carries it as an edit of the suite file, so the case lands on the fix branch with
the fix, verified with it. A scripted session on a real daemon; the drafting rules alone below."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from fix_flow_testkit import FIX_EDIT, approve_when_proposed, make_refund_project, ollie_with_fixes
from ollie_fake_runner import FakeRunner

from fixtures.scripted_messages_api import ScriptedMessagesAPI, text_turn, tool_turn
from opik_connect.agent.ollie.case_drafts import (
    DraftedCase,
    DraftTestCaseInput,
    draft_test_case,
    obvious_assertions,
    with_drafted_cases,
)
from opik_connect.agent.ollie.events import SessionEmitter
from opik_connect.agent.ollie.session_request import OllieLimits
from opik_connect.agent.ollie.suite_cases import StaticCases
from opik_connect.agent.ollie.tool_base import SessionSubject, ToolError, ToolState
from opik_connect.agent.traces.store import TraceStore
from opik_connect.connect.terminal.ask_client import ask_stream
from opik_connect.protocol import AskRequest, ProposeChangeArgs

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("no_ambient_settings")]
TRACE_ID = "tr-refund-amount-1"
EXAMPLE_TRACE = Path(__file__).resolve().parents[3] / "fixtures" / "example_traces"
TRACE_FIXTURES = Path(__file__).resolve().parents[2] / "trace_fixtures"


def write_trace(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "trace": {
            "id": TRACE_ID,
            "name": "answer",
            "input": {"question": "what is my refund, exactly?"},
            "output": {"output": "Your refund is 20 dollars"},
        },
        "spans": [],
    }
    (directory / f"{TRACE_ID}.json").write_text(json.dumps(document))
    return directory


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout


async def test_a_drafted_case_ships_on_the_fix_branch_verified_with_the_fix(
    tmp_path: Path,
) -> None:
    repo = make_refund_project(tmp_path / "project")
    draft = {
        "item_id": "refund-amount-from-trace",
        "description": "the agent quoted the wrong refund amount",
        "assertions": ["The answer states the refund amount"],
        "contains": ["10 dollars"],
        "not_contains": ["20 dollars"],
    }
    turns = [
        tool_turn("draft_test_case", draft, match="refund", tool_id="toolu_draft"),
        tool_turn(
            "propose_change",
            {
                "title": "Answer the right refund",
                "reason": f"trace {TRACE_ID}: the agent says 20 dollars",
                "edits": [FIX_EDIT],
            },
            match=["toolu_draft", "Drafted"],
            tool_id="toolu_propose",
        ),
        text_turn("Fixed, with a test case.", match=["toolu_propose", "approved"]),
    ]
    with ScriptedMessagesAPI(turns) as api:
        traces = TraceStore(directory=write_trace(tmp_path / "traces"))
        limits = OllieLimits(max_turns=6, wall_time_s=80)
        async with ollie_with_fixes(
            repo, api.url, tmp_path / "transcripts", traces=traces, limits=limits
        ) as (p, service):
            user = asyncio.create_task(approve_when_proposed(service))
            request = AskRequest(question="Why is the refund wrong?", trace_id=TRACE_ID)
            request = request.model_copy(update={"suite": "refunds"})
            events = [e async for e in ask_stream(p.address, request)]
            proposal_id = await user
            assert api.unmatched == [] and api.remaining == 0
            record = service.get(proposal_id)

    assert events[-1].data["status"] == "completed"
    assert record.args.test_case_ids == ["refund-amount-from-trace"]
    assert record.args.suite == "refunds"
    assert {stat.path for stat in record.files} == {
        "agentpkg/agent.py",
        ".opik/suites/refunds.yaml",
    }
    check = record.verification
    assert check is not None and check.status == "verified"
    assert check.summary == "verified: refund-amount-from-trace failed → passed; c1 failed → passed"
    assert record.status == "applied" and record.branch
    shipped = yaml.safe_load(git(repo, "show", f"{record.branch}:.opik/suites/refunds.yaml"))
    assert [item["id"] for item in shipped["items"]] == ["c1", "refund-amount-from-trace"]
    new = shipped["items"][1]
    assert new["data"] == {"question": "what is my refund, exactly?"}
    assert new["assertions"] == [
        "The answer states the refund amount",
        {"contains": "10 dollars"},
        {"not_contains": "20 dollars"},
    ]
    assert new["description"].startswith(f"From trace {TRACE_ID}: ")
    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", record.branch)
    assert "Opik-Test-Case: refund-amount-from-trace" in trailers
    assert "refund-amount-from-trace" not in (repo / ".opik/suites/refunds.yaml").read_text()


def test_an_echoed_identifier_is_an_obvious_deterministic_check() -> None:
    [path] = EXAMPLE_TRACE.glob("01a20cc8-8e80-7db4-9391-3add8bd68e37.json")
    trace = json.loads(path.read_text())["trace"]
    assert obvious_assertions(trace["input"], trace["output"]) == [
        {"json_path": "$.order_id", "equals": "A1002"}
    ]
    assert obvious_assertions({"q": "hi"}, {"output": "hi there", "n": 1, "ok": True}) == []


SUITE = """\
name: refunds
items:
  - id: c1
    data: {question: "how much?"}
    assertions: [{contains: 10 dollars}]
"""


async def test_a_diff_proposal_gets_the_case_as_a_diff_and_a_clash_is_refused() -> None:
    runner = FakeRunner({".opik/suites/refunds.yaml": SUITE})
    state = ToolState(
        runner=runner,
        traces=TraceStore(),
        cases=StaticCases([]),
        subject=SessionSubject(None, None),
        emitter=SessionEmitter("ses-1", None),
    )
    item = {"id": "c2", "description": "d", "data": {"question": "q"}, "assertions": ["ok"]}
    state.drafted_cases[("refunds", "c2")] = DraftedCase("refunds", item)
    diff = "--- a/agentpkg/agent.py\n+++ b/agentpkg/agent.py\n@@ -1 +1 @@\n-a\n+b\n"
    args = ProposeChangeArgs(title="t", reason="r", diff=diff)

    merged = await with_drafted_cases(state, args)

    assert merged.test_case_ids == ["c2"] and merged.suite == "refunds"
    assert merged.diff is not None and merged.diff.startswith(diff)
    assert "+++ b/.opik/suites/refunds.yaml\n" in merged.diff
    assert "+  - id: c2\n" in merged.diff
    state.drafted_cases[("refunds", "c1")] = DraftedCase("refunds", {**item, "id": "c1"})
    with pytest.raises(ToolError, match="duplicate item id 'c1'"):
        await with_drafted_cases(state, args)


INPUTS_LAST = """\
name: refunds
items:
  - id: c1
    data: {question: "how much?"}
global_assertions: [{max_chars: 600}]
"""


@pytest.mark.parametrize(
    ("change", "files", "message"),
    [
        ({"item_id": "no spaces"}, {}, "item_id 'no spaces'"),
        ({"assertions": [" "]}, {}, "at least one natural-language assertion"),
        ({"trace_id": "nope"}, {}, "not found"),
        ({}, {".opik/suites/refunds.yaml": INPUTS_LAST}, "its last key is not"),
    ],
)
async def test_a_draft_that_cannot_be_made_is_a_named_error(
    change: dict, files: dict, message: str
) -> None:
    state = ToolState(
        runner=FakeRunner(files),
        traces=TraceStore(directory=TRACE_FIXTURES),
        cases=StaticCases([]),
        subject=SessionSubject("tr-refund-0001", "refunds"),
        emitter=SessionEmitter("ses-1", None),
    )
    args = {"item_id": "c2", "description": "d", "assertions": ["ok"], **change}
    with pytest.raises(ToolError, match=message):
        await draft_test_case(state, DraftTestCaseInput(**args))
    assert state.drafted_cases == {}


async def test_a_draft_for_a_suite_not_there_yet_creates_the_file() -> None:
    runner = FakeRunner({})
    state = ToolState(
        runner=runner,
        traces=TraceStore(directory=TRACE_FIXTURES),
        cases=StaticCases([]),
        subject=SessionSubject("tr-refund-0001", "new-suite"),
        emitter=SessionEmitter("ses-1", None),
    )
    await draft_test_case(
        state, DraftTestCaseInput(item_id="c1", description="d", assertions=["ok"])
    )
    merged = await with_drafted_cases(
        state, ProposeChangeArgs(title="t", reason="r", edits=[FIX_EDIT])
    )
    assert merged.edits is not None
    created = merged.edits[-1]
    assert (created.path, created.old_string) == (".opik/suites/new-suite.yaml", "")
    suite = yaml.safe_load(created.new_string)
    assert suite["name"] == "new-suite" and [i["id"] for i in suite["items"]] == ["c1"]
