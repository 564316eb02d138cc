"""The demo's log step without the SDK: the recorded SDK requests replayed into a real sink."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from opik_connect.agent.traces.sink_http import TraceSinkServer
from opik_connect.agent.traces.sink_store_sqlite import SqliteSinkStore
from opik_connect.connect.suites.suite_tracing import TraceSink
from opik_connect.demo.production import (
    CUSTOMERS,
    FAILING,
    log_production,
    sdk_importable,
)
from opik_connect.demo.scenario import DemoError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


async def test_without_the_sdk_the_recorded_requests_land_in_the_sink(tmp_path: Path) -> None:
    store = await SqliteSinkStore.open(tmp_path / "traces.sqlite3")
    try:
        async with TraceSinkServer(store, "platform-token") as server:
            sink = TraceSink(server.url, "platform-token")
            logged = await log_production(tmp_path, FIXTURES, sink, use_sdk=False)
            assert "a recorded stand-in (opik is not installed in" in logged.by
            assert "replayed from fixtures/demo/production_requests.json" in logged.by
            assert set(logged.ids) == {c.slug for c in CUSTOMERS}
            failing = await store.get(logged.ids[FAILING.slug])
            assert failing is not None
            assert failing.trace.input == FAILING.data
            assert [s.name for s in failing.spans if s.parent_span_id is None] == [
                "answer_question"
            ]
            assert {s.name for s in failing.spans} >= {"build_prompt", "lookup_order"}
            [score] = failing.trace.feedback_scores or []
            assert (score.name, score.value) == ("customer_satisfied", 0.0)

            wrong = TraceSink(server.url, "not-the-token")
            with pytest.raises(DemoError, match=r"the sink refused a recorded POST .* 401"):
                await log_production(tmp_path, FIXTURES, wrong, use_sdk=False)
    finally:
        await store.close()


def test_a_blocked_opik_module_counts_as_not_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sdk_importable()  # a test dependency
    monkeypatch.setitem(sys.modules, "opik", None)
    assert not sdk_importable()
