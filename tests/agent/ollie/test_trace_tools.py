"""Ollie's tools across traces: search with filters, compare two span by span, page spans; and
a 250-span trace whose late errored span get_trace and list_spans both reach."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from big_trace import ERRORED_SPAN, big_trace, small_trace, write_traces

from opik_connect.agent.ollie.events import SessionEmitter, SessionEvent
from opik_connect.agent.ollie.suite_cases import StaticCases
from opik_connect.agent.ollie.tool_base import SessionSubject
from opik_connect.agent.ollie.tools import OllieTools, ToolOutcome
from opik_connect.agent.traces.sink_models import SpanWrite, TraceWrite
from opik_connect.agent.traces.sink_store_sqlite import SqliteSinkStore
from opik_connect.agent.traces.store import TraceStore
from tests.ollie_fake_runner import FakeRunner


async def _ignore(event: SessionEvent) -> None:
    return None


@pytest.fixture
async def store(tmp_path: Path):
    directory = write_traces(
        tmp_path / "traces",
        small_trace("tr-fail", "refund window?", fail=True, minute=5),
        small_trace("tr-ok", "refund window for annual?", fail=False, minute=3),
        big_trace(),
    )
    sink = await SqliteSinkStore.open(tmp_path / "sink.sqlite3")
    sink_doc = small_trace("tr-sink", "shipping time?", fail=False, minute=9)
    await sink.write_traces([TraceWrite.model_validate(sink_doc["trace"])])
    await sink.write_spans(
        [SpanWrite.model_validate({**s, "trace_id": "tr-sink"}) for s in sink_doc["spans"]]
    )
    yield TraceStore(directory=directory, sink=sink)
    await sink.close()


def _tools(store: TraceStore, trace_id: str = "tr-fail") -> OllieTools:
    return OllieTools(
        runner=FakeRunner({}),
        traces=store,
        cases=StaticCases([]),
        subject=SessionSubject(trace_id, None, []),
        emitter=SessionEmitter("ses-1", _ignore),
    )


async def _call(store: TraceStore, tool: str, **tool_input: Any) -> ToolOutcome:
    return await _tools(store).call(tool, tool_input)


async def test_search_traces_filters_and_orders_newest_first(store: TraceStore) -> None:
    everything = (await _call(store, "search_traces")).content.splitlines()
    assert everything[0].startswith("4 of 4 matching trace(s)")
    assert [line.split()[2] for line in everything[1:]] == [
        "tr-sink", "tr-fail", "tr-ok", "tr-big-0250",
    ]  # fmt: skip
    errored = (await _call(store, "search_traces", has_error=True)).content
    assert "tr-fail" in errored and "tr-big-0250" in errored and "tr-ok" not in errored
    assert "1 errored span(s)" in errored and "scores correct=0.1" in errored
    low = (await _call(store, "search_traces", score_below=0.05)).content
    assert "tr-big-0250" in low and "tr-fail" not in low
    text = (await _call(store, "search_traces", text="annual", tag="support")).content
    assert text.startswith("1 of 1") and "tr-ok" in text
    since = (await _call(store, "search_traces", since="2026-03-02T10:04:00Z")).content
    assert "tr-fail" in since and "tr-sink" in since and "tr-ok" not in since
    paged = (await _call(store, "search_traces", limit=1, offset=1)).content
    assert "offset=2 for more" in paged and "tr-fail" in paged
    none = (await _call(store, "search_traces", name="nope")).content
    assert "no traces match" in none and "trace sink" in none
    bad = await _call(store, "search_traces", since="yesterday")
    assert bad.is_error and json.loads(bad.content)["error"]["code"] == "invalid_args"
    unknown = await _call(store, "search_traces", colour="red")
    assert unknown.is_error


async def test_compare_traces_shows_the_differing_step_and_path(store: TraceStore) -> None:
    outcome = await _call(store, "compare_traces", other_trace_id="tr-ok")
    text = outcome.content
    assert not outcome.is_error
    assert "path A: answer > .lookup_policy! > .call_model" in text
    assert "path B: answer > .lookup_policy > .call_model > .cite_source" in text
    assert "~ /answer/lookup_policy [tool]" in text
    assert "error: A KeyError: 'refund_window' | B ok" in text
    assert 'output: A {"a":"I don\'t know"} | B {"a":"30 days"}' in text
    assert "only in B (1): /answer/cite_source id=tr-ok-c" in text
    assert "feedback: correct=0.1 — no window" in text
    missing = await _call(store, "compare_traces", other_trace_id="tr-nope")
    error = json.loads(missing.content)["error"]
    assert error["code"] == "trace_not_found" and "looked in" in error["message"]


async def test_a_250_span_trace_shows_its_errored_span_first(store: TraceStore) -> None:
    text = (await _tools(store, "tr-big-0250").call("get_trace", {})).content
    assert "feedback: correct=0 — no refund window" in text.splitlines()[1]
    tree_at = text.index("tree of the other spans")
    assert 0 < text.index(f"id={ERRORED_SPAN}") < tree_at
    assert text.index("call_model [llm]") < tree_at
    assert "KeyError: 'refund_window'" in text
    assert "more spans not shown (list_spans pages through all)" in text


async def test_list_spans_pages_filters_and_puts_errors_first(store: TraceStore) -> None:
    tools = _tools(store, "tr-big-0250")
    first = (await tools.call("list_spans", {"limit": 2})).content.splitlines()
    assert first[0].startswith("trace tr-big-0250: spans 1–2 of 250")
    assert "offset=2 for more" in first[0]
    assert f"id={ERRORED_SPAN}" in first[1]
    page = (await tools.call("list_spans", {"offset": 248, "errors_first": False})).content
    assert "spans 249–250 of 250" in page and "call_model [llm]" in page
    llm = (await tools.call("list_spans", {"type": "llm"})).content
    assert "spans 1–1 of 1" in llm
    named = (await tools.call("list_spans", {"name": "CHUNK_12", "errors_first": False})).content
    assert "fetch_chunk_12 " in named and "fetch_chunk_120" in named
    only = (await tools.call("list_spans", {"only_errors": True, "trace_id": "tr-ok"})).content
    assert "spans 1–0 of 0" in only
