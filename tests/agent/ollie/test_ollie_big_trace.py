"""A scripted session on a 250-span trace: the real Ollie loop reaches the errored span (past the
200-span view in depth-first order) from get_trace's first answer, pages to it with list_spans,
compares the failing run with a successful one, and opens the span in full."""

from __future__ import annotations

from pathlib import Path

import pytest
from big_trace import ERRORED_SPAN, big_trace, small_trace, write_traces

from fixtures.scripted_messages_api import ScriptedMessagesAPI, text_turn, tool_turn
from opik_connect.agent.ollie.events import SessionEvent, SessionStatus
from opik_connect.agent.ollie.loop import Ollie
from opik_connect.agent.ollie.session_request import OllieLimits, OllieRequest
from opik_connect.agent.traces.store import TraceStore
from tests.ollie_fake_runner import FakeRunner

pytestmark = pytest.mark.timeout(60)

FINAL = f"Cause: span {ERRORED_SPAN} lookup_refund_policy raised KeyError 'refund_window'."


async def test_ollie_reaches_the_errored_span_of_a_250_span_trace(tmp_path: Path) -> None:
    traces = write_traces(
        tmp_path / "traces",
        big_trace(),
        small_trace("tr-ok", "refund window?", fail=False, minute=3),
    )
    turns = [
        tool_turn("get_trace", {}, match="refund", tool_id="toolu_tree"),
        tool_turn(
            "list_spans",
            {"only_errors": True},
            match=["toolu_tree", f"id={ERRORED_SPAN}", "no refund window"],
            tool_id="toolu_errors",
        ),
        tool_turn(
            "search_traces",
            {"name": "answer", "has_error": False},
            match=["toolu_errors", "spans 1–1 of 1", "KeyError"],
            tool_id="toolu_search",
        ),
        tool_turn(
            "compare_traces",
            {"other_trace_id": "tr-ok"},
            match=["toolu_search", "tr-ok"],
            tool_id="toolu_compare",
        ),
        tool_turn(
            "get_span",
            {"span_id": ERRORED_SPAN},
            match=["toolu_compare", "only in A"],
            tool_id="toolu_span",
        ),
        text_turn(FINAL, match=["toolu_span", "error: KeyError", "lookup_refund_policy"]),
    ]
    events: list[SessionEvent] = []

    async def on_event(event: SessionEvent) -> None:
        events.append(event)

    with ScriptedMessagesAPI(turns) as api:
        ollie = Ollie(
            model="claude-haiku-4-5",
            api_key="test-key",
            base_url=api.url,
            max_retries=0,
            limits=OllieLimits(),
            transcript_dir=tmp_path / "transcripts",
        )
        result = await ollie.run_session(
            OllieRequest(question="Why no refund answer?", trace_id="tr-big-0250"),
            runner=FakeRunner({}),
            traces=TraceStore(directory=traces),
            on_event=on_event,
        )
    assert api.unmatched == [] and api.remaining == 0, api.requests[-1]["messages"][-1]
    assert result.status is SessionStatus.COMPLETED and result.final_answer == FINAL
