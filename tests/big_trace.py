"""Trace documents for the trace-tool tests: a 250-span trace whose one errored span comes late
(past get_trace's 200-span view in depth-first order), and small failing/successful pairs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ERRORED_SPAN = "sp-0240"


def _at(second: int) -> str:
    return f"2026-03-01T10:{second // 60:02d}:{second % 60:02d}.000Z"


def big_trace(trace_id: str = "tr-big-0250", spans: int = 250) -> dict[str, Any]:
    """A root, then chunk spans; span 240 is a tool that raised, the last one is the llm call."""
    items: list[dict[str, Any]] = [
        {"id": "sp-0000", "name": "answer", "type": "general", "start_time": _at(0),
         "end_time": _at(300), "input": {"question": "refund window?"}, "output": {"a": "?"}}
    ]  # fmt: skip
    for n in range(1, spans):
        span: dict[str, Any] = {
            "id": f"sp-{n:04d}",
            "parent_span_id": "sp-0000",
            "name": f"fetch_chunk_{n}",
            "type": "general",
            "start_time": _at(n),
            "end_time": _at(n + 1),
            "input": {"chunk": n},
            "output": {"text": f"chunk {n}"},
        }
        if span["id"] == ERRORED_SPAN:
            span.update(
                name="lookup_refund_policy",
                type="tool",
                error_info={"exception_type": "KeyError", "message": "'refund_window'"},
                output=None,
            )
        if n == spans - 1:
            span.update(name="call_model", type="llm", model="claude-haiku-4-5")
        items.append(span)
    trace = {"id": trace_id, "name": "answer", "start_time": _at(0), "end_time": _at(300),
             "input": {"question": "refund window?"}, "output": {"a": "?"},
             "feedback_scores": [{"name": "correct", "value": 0,
                                  "reason": "no refund window"}]}  # fmt: skip
    return {"trace": trace, "spans": items}


def small_trace(trace_id: str, question: str, *, fail: bool, minute: int) -> dict[str, Any]:
    """answer > lookup_policy > call_model; a failing run's lookup raises and it skips a step."""
    start = f"2026-03-02T10:{minute:02d}:00.000Z"
    end = f"2026-03-02T10:{minute:02d}:02.000Z"
    lookup: dict[str, Any] = {"id": f"{trace_id}-l", "parent_span_id": f"{trace_id}-r",
                              "name": "lookup_policy", "type": "tool", "start_time": start,
                              "end_time": end, "input": {"q": question},
                              "output": None if fail else {"policy": "30 days"}}  # fmt: skip
    if fail:
        lookup["error_info"] = {"exception_type": "KeyError", "message": "'refund_window'"}
    spans = [
        {"id": f"{trace_id}-r", "name": "answer", "type": "general", "start_time": start,
         "end_time": end, "input": {"q": question}, "output": {"a": "ok"}},
        lookup,
        {"id": f"{trace_id}-m", "parent_span_id": f"{trace_id}-r", "name": "call_model",
         "type": "llm", "start_time": start, "end_time": end, "input": {"q": question},
         "output": {"a": "I don't know" if fail else "30 days"}},
    ]  # fmt: skip
    if not fail:
        spans.append({"id": f"{trace_id}-c", "parent_span_id": f"{trace_id}-r",
                      "name": "cite_source", "type": "tool", "start_time": start,
                      "end_time": end, "input": {}, "output": {"url": "/policy"}})  # fmt: skip
    trace: dict[str, Any] = {"id": trace_id, "name": "answer", "start_time": start,
                             "end_time": end, "input": {"q": question},
                             "output": {"a": "I don't know" if fail else "30 days"},
                             "tags": ["support"]}  # fmt: skip
    if fail:
        trace["feedback_scores"] = [{"name": "correct", "value": 0.1, "reason": "no window"}]
    return {"trace": trace, "spans": spans}


def write_traces(directory: Path, *documents: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for document in documents:
        path = directory / f"{document['trace']['id']}.json"
        path.write_text(json.dumps(document), encoding="utf-8")
    return directory
