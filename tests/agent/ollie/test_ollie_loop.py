"""Ollie's loop end to end against the scripted Messages API and an in-memory runner.

Ollie's loop end to end: the real Anthropic SDK against the scripted Messages API, an
in-memory runner, the fixture traces. Each test asserts both what Ollie did and what it sent.
"""

import asyncio
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from fixtures.scripted_messages_api import ScriptedMessagesAPI, error_turn, text_turn, tool_turn
from opik_connect.agent.ollie.events import SESSION_EVENT, SessionEvent, SessionStatus, TokenUsage
from opik_connect.agent.ollie.loop import Ollie
from opik_connect.agent.ollie.model_client import ModelReply
from opik_connect.agent.ollie.prompt import CUT_OFF_NOTE
from opik_connect.agent.ollie.session_request import OllieLimits, OllieRequest
from opik_connect.agent.ollie.tool_registry import TOOLS
from opik_connect.agent.ollie.transcript import load_transcript, print_transcript
from opik_connect.agent.traces.store import TraceStore
from opik_connect.protocol import BridgeError, ErrorCode, ProposalDecided
from tests.ollie_fake_runner import FakeRunner, suite_run

pytestmark = pytest.mark.timeout(30)

TRACES = Path(__file__).parents[2] / "trace_fixtures"
AGENT_PY = """\
MAX_CONTEXT_CHARS = 0


def build_prompt(question, articles):
    context = "\\n".join(a.body for a in articles)[:MAX_CONTEXT_CHARS]
    return f"Context:\\n{context}\\n\\nQuestion: {question}"
"""
SUITE_YAML = """\
name: support
description: Support QA
global_assertions:
  - {max_chars: 800}
items:
  - id: refund-annual
    description: Refunds for annual plans
    data: {question: "How long do refunds take for annual plans?"}
    assertions:
      - "The answer says refunds for annual plans take 5-10 business days"
      - {contains: "10 business days"}
  - id: shipping
    data: {question: "Do you ship abroad?"}
"""
FILES = {"agent.py": AGENT_PY, ".opik/suites/support.yaml": SUITE_YAML}
FIX_EDIT = {
    "path": "agent.py",
    "old_string": "MAX_CONTEXT_CHARS = 0",
    "new_string": "MAX_CONTEXT_CHARS = 4000",
}
BAD_EDIT = {"path": "agent.py", "old_string": "MAX_CONTEXT = 0", "new_string": "MAX_CONTEXT = 4000"}
FINAL = "Cause: build_prompt (span sp-build) clipped the context to 0 chars. Fix: approved."


def approved(proposal_id: str) -> ProposalDecided:
    return ProposalDecided(
        proposal_id=proposal_id,
        decision="approved",
        branch="opik/fix/abc-context",
        commit="abc123",
        suite_results=[suite_run("support", True, tree="opik/fix/abc-context", run_id="run-2")],
    )


def propose(edit: dict[str, str], *, match: str | list[str] | None = None) -> dict[str, Any]:
    return tool_turn(
        "propose_change",
        {"title": "Keep the retrieved context", "reason": "sp-build got 0 chars", "edits": [edit]},
        match=match,
    )


@pytest.fixture(autouse=True)
def state_dir(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared tmp state dir, and no ambient Anthropic base URL."""
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


class Session:
    """One scripted API, one runner, one Ollie, and the events it emitted."""

    def __init__(self, api: ScriptedMessagesAPI, runner: FakeRunner, tmp_path: Path, **limits: Any):
        self.api = api
        self.runner = runner
        self.events: list[SessionEvent] = []
        self.ollie = Ollie(
            model="claude-haiku-4-5",
            api_key="test-key",
            base_url=api.url,
            max_retries=2,
            limits=OllieLimits(**limits),
            transcript_dir=tmp_path / "transcripts",
        )

    async def on_event(self, event: SessionEvent) -> None:
        self.events.append(event)

    async def run(self, **request: Any):
        request.setdefault("question", "Why did the refund question get no answer?")
        request.setdefault("trace_id", "tr-refund-0001")
        request.setdefault("suite", "support")
        return await self.ollie.run_session(
            OllieRequest(**request),
            runner=self.runner,
            traces=TraceStore(directory=TRACES),
            on_event=self.on_event,
        )

    def types(self) -> list[str]:
        return [event.type for event in self.events]

    def tool_results(self, request_index: int) -> list[dict[str, Any]]:
        return self.api.requests[request_index]["messages"][-1]["content"]


async def test_engine_error_is_corrected_then_approved_and_answered(tmp_path: Path) -> None:
    turns = [
        tool_turn("get_trace", {}, text="Let me read the trace first."),
        tool_turn("read_file", {"path": "agent.py"}, match="id=sp-build"),
        tool_turn("get_test_cases", {}, match="MAX_CONTEXT_CHARS = 0"),
        propose(BAD_EDIT, match="refund-annual"),
        propose(FIX_EDIT, match="match_not_found"),
        text_turn(FINAL, match='\\"decision\\": \\"approved\\"'),
    ]
    not_found = BridgeError(
        ErrorCode.MATCH_NOT_FOUND, "old_string not found in agent.py; closest: line 1", line=1
    )
    runner = FakeRunner(
        FILES, proposals=[not_found, "prop-2"], decisions={"prop-2": approved("prop-2")}
    )
    with ScriptedMessagesAPI(turns) as api:
        session = Session(api, runner, tmp_path, max_output_tokens=1234)
        result = await session.run(case_ids=["refund-annual"])

    assert api.unmatched == [] and api.remaining == 0
    assert result.status is SessionStatus.COMPLETED
    assert result.final_answer == FINAL
    assert result.proposal_ids == ["prop-2"] and result.decisions == {"prop-2": "approved"}

    first = api.requests[0]
    assert first["model"] == "claude-haiku-4-5" and first["max_tokens"] == 1234
    names = [tool["name"] for tool in first["tools"]]
    assert names == [
        "list_files",
        "read_file",
        "search_files",
        "get_trace",
        "get_span",
        "search_traces",
        "compare_traces",
        "list_spans",
        "get_test_cases",
        "draft_test_case",
        "propose_change",
        "run_suite",
    ]
    assert first["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert all("cache_control" not in tool for tool in first["tools"][:-1])
    assert first["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert "root cause" in first["system"][0]["text"]
    assert "tr-refund-0001" in first["messages"][0]["content"][0]["text"]

    trace_result = session.tool_results(1)[0]
    assert "is_error" not in trace_result
    assert "- build_prompt [general] 0.010s  id=sp-build" in trace_result["content"]

    cases = json.loads(session.tool_results(3)[0]["content"])
    assert [case["id"] for case in cases["test_cases"]] == ["refund-annual"]
    assert cases["test_cases"][0]["assertions"] == [
        '{"max_chars": 800}',
        "The answer says refunds for annual plans take 5-10 business days",
        '{"contains": "10 business days"}',
    ]

    engine_error = session.tool_results(4)[0]
    assert engine_error["is_error"] is True
    assert json.loads(engine_error["content"]) == {
        "error": {
            "code": "match_not_found",
            "message": "old_string not found in agent.py; closest: line 1",
            "details": {"line": 1},
        }
    }
    decision = json.loads(session.tool_results(5)[0]["content"])
    assert decision["decision"] == "approved" and decision["branch"] == "opik/fix/abc-context"
    assert decision["suite_results"][0]["status"] == "passed"

    proposed = [args for name, args in runner.calls if name == "propose_change"]
    assert [p.edits[0].old_string for p in proposed] == ["MAX_CONTEXT = 0", "MAX_CONTEXT_CHARS = 0"]
    assert proposed[1].trace_id == "tr-refund-0001" and proposed[1].suite == "support"
    assert proposed[1].test_case_ids == ["refund-annual"]

    types = session.types()
    assert types[0] == "session_started" and types[-1] == "session_stopped"
    assert types.count("proposal_sent") == 1 and "decision_received" in types
    assert types.index("final_answer") < types.index("session_stopped")
    assert [event.seq for event in session.events] == list(range(1, len(types) + 1))
    errors = [e for e in session.events if e.type == "tool_resulted" and e.is_error]
    assert [e.error_code for e in errors] == ["match_not_found"]
    for event in session.events:
        assert SESSION_EVENT.validate_json(event.model_dump_json()) == event


async def test_transcript_records_the_session_and_prints(tmp_path: Path) -> None:
    turns = [tool_turn("read_file", {"path": "agent.py"}), text_turn(FINAL, match="tool_result")]
    with ScriptedMessagesAPI(turns) as api:
        session = Session(api, FakeRunner(FILES), tmp_path)
        result = await session.run()
    path = Path(result.transcript_path)
    assert path.parent == tmp_path / "transcripts" and os.stat(path).st_mode & 0o777 == 0o600
    records = load_transcript(path)
    kinds = [record["type"] for record in records]
    assert kinds == [
        "session_started",
        "message",
        "usage",
        "message",
        "tool",
        "message",
        "usage",
        "message",
        "session_stopped",
    ]
    usage_total = sum(r["usage"]["input_tokens"] for r in records if r["type"] == "usage")
    stopped = records[-1]
    assert stopped["usage"]["input_tokens"] == usage_total == result.usage.input_tokens
    assert stopped["cost_usd_estimate"] == result.cost_usd_estimate > 0
    assert "estimate" in stopped["cost_note"]
    assert records[4]["name"] == "read_file" and "MAX_CONTEXT_CHARS" in records[4]["content"]

    out = io.StringIO()
    print_transcript(path, Console(file=out, width=120))
    printed = out.getvalue()
    assert "→ read_file" in printed and "← read_file ok" in printed
    assert "completed after 2 turns" in printed and "(estimate)" in printed
    assert FINAL in printed


async def test_rejection_reason_reaches_the_model_and_it_revises(tmp_path: Path) -> None:
    reason = "Don't hardcode it; read the budget from settings.CONTEXT_CHARS"
    turns = [
        propose(FIX_EDIT),
        propose(
            {**FIX_EDIT, "new_string": "MAX_CONTEXT_CHARS = settings.CONTEXT_CHARS"},
            match="rejected",
        ),
        text_turn(FINAL, match="approved"),
    ]
    rejected = ProposalDecided(proposal_id="prop-1", decision="rejected", reason=reason)
    runner = FakeRunner(
        FILES,
        proposals=["prop-1", "prop-2"],
        decisions={"prop-1": rejected, "prop-2": approved("prop-2")},
    )
    with ScriptedMessagesAPI(turns) as api:
        session = Session(api, runner, tmp_path)
        result = await session.run()
    assert result.status is SessionStatus.COMPLETED
    assert result.decisions == {"prop-1": "rejected", "prop-2": "approved"}
    rejection = session.tool_results(1)[0]
    assert "is_error" not in rejection
    body = json.loads(rejection["content"])
    assert body["decision"] == "rejected" and body["reason"] == reason
    decisions = [e for e in session.events if e.type == "decision_received"]
    assert [(d.decision, d.reason) for d in decisions] == [("rejected", reason), ("approved", None)]
    assert decisions[1].suite_statuses == {"support": "passed"}


async def test_max_turns_stops_the_session(tmp_path: Path) -> None:
    turns = [{**tool_turn("list_files", {}), "repeat": True}]
    with ScriptedMessagesAPI(turns) as api:
        session = Session(api, FakeRunner(FILES), tmp_path, max_turns=3)
        result = await session.run()
    assert result.status is SessionStatus.MAX_TURNS and result.turns == 3
    assert len(api.requests) == 3
    assert session.events[-1].type == "session_stopped"
    assert session.events[-1].status is SessionStatus.MAX_TURNS


async def test_token_budget_stops_before_running_more_tools(tmp_path: Path) -> None:
    turn = tool_turn("read_file", {"path": "agent.py"})
    turn["message"]["usage"] = {"input_tokens": 900, "cache_read_input_tokens": 200}
    with ScriptedMessagesAPI([turn]) as api:
        runner = FakeRunner(FILES)
        session = Session(api, runner, tmp_path, token_budget=1000)
        result = await session.run()
    assert result.status is SessionStatus.TOKEN_BUDGET
    assert "1,000" in result.detail
    assert runner.calls == [] and len(api.requests) == 1


async def test_wall_time_stops_a_session_waiting_for_a_decision(tmp_path: Path) -> None:
    with ScriptedMessagesAPI([propose(FIX_EDIT)]) as api:
        runner = FakeRunner(FILES, proposals=["prop-1"])
        session = Session(api, runner, tmp_path, wall_time_s=0.5)
        result = await session.run()
    assert result.status is SessionStatus.WALL_TIME
    assert result.proposal_ids == ["prop-1"] and result.decisions == {}
    assert session.types()[-2:] == ["proposal_sent", "session_stopped"]
    assert load_transcript(Path(result.transcript_path))[-1]["status"] == "wall_time"


async def test_decision_timeout_is_an_error_result_for_the_model(tmp_path: Path) -> None:
    turns = [
        propose(FIX_EDIT),
        text_turn("The user has not decided yet.", match="decision_timeout"),
    ]
    with ScriptedMessagesAPI(turns) as api:
        runner = FakeRunner(FILES, proposals=["prop-1"])
        session = Session(api, runner, tmp_path, decision_timeout_s=0.2)
        result = await session.run()
    assert result.status is SessionStatus.COMPLETED
    assert session.tool_results(1)[0]["is_error"] is True


def cut_off(content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"message": {"content": content, "stop_reason": "max_tokens"}}


async def test_max_tokens_continues_once_then_stops(tmp_path: Path) -> None:
    half_call = {"type": "tool_use", "id": "toolu_cut", "name": "read_file", "input": {}}
    turns = [
        cut_off([{"type": "text", "text": "The trace shows"}, half_call]),
        cut_off([{"type": "text", "text": "and then"}]),
    ]
    with ScriptedMessagesAPI(turns) as api:
        session = Session(api, FakeRunner(FILES), tmp_path, max_output_tokens=50)
        result = await session.run()
    assert result.status is SessionStatus.MAX_TOKENS and "50-token" in result.detail
    second = api.requests[1]["messages"]
    assert second[-2] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "The trace shows"}],
    }
    assert second[-1]["content"][0]["text"] == CUT_OFF_NOTE


async def test_max_tokens_continuation_can_finish(tmp_path: Path) -> None:
    turns = [
        cut_off([{"type": "text", "text": "Cause: "}]),
        text_turn(FINAL, match="output token limit"),
    ]
    with ScriptedMessagesAPI(turns) as api:
        result = await Session(api, FakeRunner(FILES), tmp_path).run()
    assert result.status is SessionStatus.COMPLETED and result.final_answer == FINAL


async def test_overload_is_retried_then_succeeds(tmp_path: Path) -> None:
    turns = [error_turn(529, "overloaded_error", "Overloaded"), text_turn(FINAL)]
    with ScriptedMessagesAPI(turns) as api:
        result = await Session(api, FakeRunner(FILES), tmp_path).run()
    assert result.status is SessionStatus.COMPLETED
    assert len(api.requests) == 2 and result.turns == 1


async def test_persistent_api_error_stops_with_error(tmp_path: Path) -> None:
    turns = [{**error_turn(400, "invalid_request_error", "tools: bad schema"), "repeat": True}]
    with ScriptedMessagesAPI(turns) as api:
        session = Session(api, FakeRunner(FILES), tmp_path)
        result = await session.run()
    assert result.status is SessionStatus.ERROR
    assert "400" in result.detail and "bad schema" in result.detail
    assert len(api.requests) == 1, "a 400 is not retried"
    assert session.events[-1].type == "session_stopped"


async def test_refusal_stops_with_refused(tmp_path: Path) -> None:
    refusal = {
        "message": {
            "content": [{"type": "text", "text": "I can't help."}],
            "stop_reason": "refusal",
        }
    }
    with ScriptedMessagesAPI([refusal]) as api:
        result = await Session(api, FakeRunner(FILES), tmp_path).run()
    assert result.status is SessionStatus.REFUSED and "I can't help." in result.detail
    assert result.final_answer is None


async def test_pause_turn_is_sent_back_to_resume(tmp_path: Path) -> None:
    paused = {
        "message": {"content": [{"type": "text", "text": "Thinking"}], "stop_reason": "pause_turn"}
    }
    with ScriptedMessagesAPI([paused, text_turn(FINAL, match="Thinking")]) as api:
        result = await Session(api, FakeRunner(FILES), tmp_path).run()
    assert result.status is SessionStatus.COMPLETED
    assert api.requests[1]["messages"][-1]["role"] == "assistant"


async def test_empty_reply_is_nudged_once(tmp_path: Path) -> None:
    empty = {"message": {"content": [], "stop_reason": "end_turn"}}
    with ScriptedMessagesAPI([empty, text_turn(FINAL, match="no text and no tool call")]) as api:
        result = await Session(api, FakeRunner(FILES), tmp_path).run()
    assert result.status is SessionStatus.COMPLETED and result.turns == 2


async def test_cancelled_session_records_cancelled_and_reraises(tmp_path: Path) -> None:
    with ScriptedMessagesAPI([propose(FIX_EDIT)]) as api:
        runner = FakeRunner(FILES, proposals=["prop-1"])
        session = Session(api, runner, tmp_path)
        task = asyncio.create_task(session.run())
        await asyncio.wait_for(runner.waiting.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert session.events[-1].type == "session_stopped"
    assert session.events[-1].status is SessionStatus.CANCELLED
    (path,) = (tmp_path / "transcripts").glob("*.jsonl")
    assert load_transcript(path)[-1]["status"] == "cancelled"


class BrokenRunner(FakeRunner):
    async def read_file(self, args: Any) -> Any:
        raise ConnectionResetError("link dropped")


async def test_a_tool_raising_anything_goes_back_to_the_model_and_the_session_goes_on(
    tmp_path: Path,
) -> None:
    turns = [
        tool_turn("read_file", {"path": "agent.py"}),
        text_turn(FINAL, match="tool_failed"),
    ]
    on_disk_at_result: list[list[dict[str, Any]]] = []
    with ScriptedMessagesAPI(turns) as api:
        session = Session(api, BrokenRunner(FILES), tmp_path)

        async def on_event(event: SessionEvent) -> None:
            session.events.append(event)
            if event.type == "tool_resulted":
                (path,) = (tmp_path / "transcripts").glob("*.jsonl")
                on_disk_at_result.append(load_transcript(path))

        session.on_event = on_event  # type: ignore[method-assign]
        result = await session.run()

    assert result.status is SessionStatus.COMPLETED and result.final_answer == FINAL
    (sent,) = session.tool_results(1)
    assert sent["is_error"] is True
    error = json.loads(sent["content"])["error"]
    assert error["code"] == "tool_failed"
    assert error["message"] == "read_file failed: ConnectionResetError: link dropped"
    resulted = [e for e in session.events if e.type == "tool_resulted"]
    assert [(e.is_error, e.error_code) for e in resulted] == [(True, "tool_failed")]
    (records,) = on_disk_at_result
    assert [r["type"] for r in records] == [
        "session_started",
        "message",
        "usage",
        "message",
        "tool",
    ]
    assert records[-1]["is_error"] is True


async def test_a_failure_of_the_loop_itself_ends_the_session_and_keeps_the_transcript(
    tmp_path: Path,
) -> None:
    with ScriptedMessagesAPI([tool_turn("read_file", {"path": "agent.py"})]) as api:
        session = Session(api, FakeRunner(FILES), tmp_path)

        async def on_event(event: SessionEvent) -> None:
            session.events.append(event)
            if event.type == "tool_called":
                raise RuntimeError("event sink broke")

        session.on_event = on_event  # type: ignore[method-assign]
        result = await session.run()
    assert result.status is SessionStatus.ERROR
    assert "RuntimeError" in result.detail and "event sink broke" in result.detail
    assert load_transcript(Path(result.transcript_path))[-1]["status"] == "error"


class OneReplyClient:
    """A ModelClient that is not the Anthropic SDK: the loop only needs `create`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.closed = False

    async def create(self, **request: Any) -> ModelReply:
        self.requests.append(request)
        return ModelReply([{"type": "text", "text": FINAL}], "end_turn", "m-1", TokenUsage())

    async def aclose(self) -> None:
        self.closed = True


async def test_the_loop_runs_on_any_model_client(tmp_path: Path) -> None:
    client = OneReplyClient()
    async with Ollie(model="m-1", client=client, transcript_dir=tmp_path) as ollie:
        result = await ollie.run_session(
            OllieRequest(question="why?"), runner=FakeRunner(FILES), traces=TraceStore()
        )
    assert result.status is SessionStatus.COMPLETED and result.final_answer == FINAL
    assert client.closed
    (request,) = client.requests
    assert request["model"] == "m-1"
    sent = [{k: v for k, v in tool.items() if k != "cache_control"} for tool in request["tools"]]
    assert sent == [tool.definition() for tool in TOOLS]


@pytest.mark.parametrize(
    ("stop_reason", "status"),
    [
        ("model_context_window_exceeded", SessionStatus.CONTEXT_WINDOW),
        ("something_new", SessionStatus.ERROR),
    ],
)
async def test_other_stop_reasons_end_with_their_status(
    tmp_path: Path, stop_reason: str, status: SessionStatus
) -> None:
    reply = {"message": {"content": [{"type": "text", "text": "…"}], "stop_reason": stop_reason}}
    with ScriptedMessagesAPI([reply]) as api:
        result = await Session(api, FakeRunner(FILES), tmp_path).run()
    assert result.status is status and result.final_answer is None


async def test_empty_replies_twice_stop_with_error(tmp_path: Path) -> None:
    empty = {"message": {"content": [], "stop_reason": "end_turn"}, "repeat": True}
    with ScriptedMessagesAPI([empty]) as api:
        result = await Session(api, FakeRunner(FILES), tmp_path).run()
    assert result.status is SessionStatus.ERROR and "without an answer" in result.detail
    assert len(api.requests) == 2
