"""Golden tests: the text Ollie reads for a trace must stay stable, compact and honest about clips.

Regenerate after an intended change with
`UPDATE_GOLDEN=1 pytest tests/agent/traces/test_trace_render.py`, then review the diff of
tests/golden/.
"""

import os
from pathlib import Path

import pytest

from opik_connect.agent.traces.render import clip, render_span, render_trace
from opik_connect.agent.traces.store import TraceStore, parse_trace_document

TRACES = Path(__file__).parents[2] / "trace_fixtures"
GOLDEN = Path(__file__).parents[2] / "golden"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.fixture
def store() -> TraceStore:
    return TraceStore(directory=TRACES)


async def test_nested_trace_with_errors_renders_depth_first(store: TraceStore) -> None:
    record = await store.get("tr-refund-0001")
    text = render_trace(record)
    check_golden("trace_refund.txt", text)
    order = [text.index(f"id={span}") for span in ("sp-root", "sp-retrieve", "sp-rank", "sp-build")]
    assert order == sorted(order), "children follow their parent, in start-time order"


async def test_huge_inputs_are_clipped_with_a_marker(store: TraceStore) -> None:
    record = await store.get("tr-huge-0002")
    text = render_trace(record)
    check_golden("trace_huge.txt", text)
    assert len(text) < 3000
    assert "…[clipped" in text and "get_span sp-h2 shows all" in text
    assert "(parent sp-gone not in trace)" in text


async def test_span_in_full_keeps_traceback_and_extras(store: TraceStore) -> None:
    record = await store.get("tr-refund-0001")
    span = record.span("sp-rank")
    assert span is not None
    check_golden("span_rerank.txt", render_span(span))


async def test_span_in_full_is_capped_for_huge_payloads(store: TraceStore) -> None:
    record = await store.get("tr-huge-0002")
    span = record.span("sp-h2")
    assert span is not None
    full = render_span(span)
    assert "Refund policy. " * 400 in full, "a span in full shows what the tree clipped"
    capped = render_span(span, max_chars=1000)
    assert capped.startswith('span sp-h2 "call_model" [llm]')
    assert "…[clipped" in capped and len(capped) < 1100


def test_clip_leaves_short_text_alone() -> None:
    assert clip("short", 10) == "short"
    assert clip("x" * 12, 10) == "x" * 10 + " …[clipped 2 of 12 chars]"


def test_spans_in_a_parent_cycle_are_shown_once() -> None:
    spans = [
        {"id": "a", "parent_span_id": "b", "name": "first"},
        {"id": "b", "parent_span_id": "a", "name": "second"},
        {"id": "c", "name": "root"},
    ]
    record = parse_trace_document({"trace": {"id": "t"}, "spans": spans}, "inline")
    text = render_trace(record)
    assert text.count("id=a") == 1 and text.count("id=b") == 1 and text.count("id=c") == 1
    assert "- first [general] ?s  id=a  (parent b forms a cycle)" in text
    assert "  - second [general] ?s  id=b" in text


def test_span_count_cap_says_how_many_are_hidden() -> None:
    spans = [{"id": f"s{i}", "name": f"n{i}"} for i in range(5)]
    record = parse_trace_document({"trace": {"id": "t"}, "spans": spans}, "inline")
    text = render_trace(record, max_spans=3)
    assert "id=s2" in text and "id=s3" not in text
    assert text.rstrip().endswith("… 2 more spans not shown (list_spans pages through all)")
