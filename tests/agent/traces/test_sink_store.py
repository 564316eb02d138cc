"""The sink's store, on SQLite and on PostgreSQL alike: upserts merge as Opik's server does,
PATCHes change only what they carry, scores replace by name, retention drops the oldest traces
with their spans and scores, and the trace store reads the sink first and says where it looked
for a missing trace."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from opik_connect.agent.traces.sink_models import (
    ScoreWrite,
    SpanUpdate,
    SpanWrite,
    TraceFilter,
    TraceUpdate,
    TraceWrite,
)
from opik_connect.agent.traces.sink_store import SinkStore, open_sink_store
from opik_connect.agent.traces.sink_store_sqlite import SqliteSinkStore
from opik_connect.agent.traces.store import TraceNotFound, TraceStore


def _trace(trace_id: str, second: int = 0, **extra: object) -> TraceWrite:
    start = f"2026-01-01T00:00:{second:02d}Z"
    return TraceWrite.model_validate({"id": trace_id, "name": "t", "start_time": start, **extra})


def _span(span_id: str, trace_id: str, **extra: object) -> SpanWrite:
    return SpanWrite.model_validate(
        {"id": span_id, "trace_id": trace_id, "start_time": "2026-01-01T00:00:00Z", **extra}
    )


@pytest.fixture(params=["sqlite", "postgres"])
async def sink(request: pytest.FixtureRequest, tmp_path: Path):
    """A sink keeping 3 traces: beside a SQLite platform store, or in a fresh PostgreSQL one."""
    location = (
        request.getfixturevalue("postgres_dsn")
        if request.param == "postgres"
        else tmp_path / "platform.sqlite3"
    )
    store = await open_sink_store(location, max_traces=3)
    yield store
    await store.close()


async def test_the_sqlite_sink_is_a_private_file_beside_the_platform_store(tmp_path: Path) -> None:
    store = await open_sink_store(tmp_path / "state" / "platform.sqlite3")
    await store.close()
    assert isinstance(store, SqliteSinkStore)
    assert store.path == tmp_path / "state" / "traces.sqlite3"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


async def test_writes_merge_by_id_and_patches_change_only_their_fields(sink: SinkStore) -> None:
    await sink.write_spans([_span("s1", "t1", name="early", input={"q": 1})])  # before its trace
    await sink.write_traces([_trace("t1", input={"q": 1}, tags=["a"])])
    await sink.write_traces([_trace("t1", output={"a": 2}, end_time="2026-01-01T00:00:05Z")])
    await sink.write_traces([("t1", TraceUpdate(metadata={"m": 1}))])
    await sink.write_spans([("s1", SpanUpdate(output={"r": 3}, type="llm"))])
    await sink.write_scores("trace", [ScoreWrite(id="t1", name="ok", value=1, reason="fine")])
    await sink.write_scores("trace", [ScoreWrite(id="t1", name="ok", value=0.2, reason="bad")])
    await sink.write_scores("span", [ScoreWrite(id="s1", name="relevance", value=0.5)])

    record = await sink.get("t1")
    assert record is not None
    trace = record.trace
    assert (trace.input, trace.output, trace.metadata, trace.tags) == (
        {"q": 1}, {"a": 2}, {"m": 1}, ["a"],
    )  # fmt: skip
    assert [(s.name, s.value, s.reason) for s in trace.feedback_scores or []] == [
        ("ok", 0.2, "bad")
    ]
    (span,) = record.spans
    assert (span.name, span.type, span.input, span.output) == ("early", "llm", {"q": 1}, {"r": 3})
    assert [s.name for s in span.feedback_scores or []] == ["relevance"]
    assert await sink.get("nope") is None


async def test_retention_drops_the_oldest_traces_with_their_spans(sink: SinkStore) -> None:
    for n in range(5):
        await sink.write_traces([_trace(f"t{n}", second=n, tags=["x"])])
        await sink.write_spans([_span(f"s{n}", f"t{n}")])
        await sink.write_scores("trace", [ScoreWrite(id=f"t{n}", name="ok", value=0)])
    found, total = await sink.search(TraceFilter())
    assert [item.id for item in found] == ["t4", "t3", "t2"] and total == 3
    assert await sink.get("t0") is None
    found, total = await sink.search(TraceFilter(tag="x", score_below=1))
    assert total == 3


async def test_spans_are_capped_too_even_before_their_trace_arrives(sink: SinkStore) -> None:
    await sink.write_spans([_span(f"o{n:03d}", "late") for n in range(350)])  # cap: 3 x 100
    await sink.write_traces([_trace("late")])
    record = await sink.get("late")
    assert record is not None and len(record.spans) == 300
    assert record.spans[0].id == "o050"  # the oldest went first


async def test_filters_combine(sink: SinkStore) -> None:
    error = {"exception_type": "KeyError", "message": "'k'"}
    await sink.write_traces(
        [
            _trace("t1", 1, name="refund_agent", input={"q": "50% off?"}),
            _trace("t2", 2, name="refund_agent", input={"q": "refund"}, error_info=error),
            _trace("t3", 3, name="shipping", output={"a": "3 days"}),
        ]
    )
    await sink.write_spans([_span("s3", "t3", error_info=error)])

    async def ids(**query: object) -> list[str]:
        return [item.id for item in (await sink.search(TraceFilter.model_validate(query)))[0]]

    assert await ids(name="REFUND") == ["t2", "t1"]
    assert await ids(has_error=True) == ["t3", "t2"]
    assert await ids(has_error=False) == ["t1"]
    assert await ids(text="50%") == ["t1"]  # LIKE wildcards are matched literally
    assert await ids(text="3 DAYS") == ["t3"]
    assert await ids(since="2026-01-01T00:00:02Z") == ["t3", "t2"]
    assert await ids(limit=1, offset=1) == ["t2"]


async def test_trace_store_reads_the_sink_and_names_where_it_looked(
    sink: SinkStore, tmp_path: Path
) -> None:
    await sink.write_traces([_trace("t1")])
    store = TraceStore(directory=tmp_path, sink=sink)
    assert (await store.get("t1")).trace.id == "t1"
    await sink.write_traces([("t1", TraceUpdate(output={"late": True}))])
    assert (await store.get("t1")).trace.output == {"late": True}  # not a stale cached copy
    with pytest.raises(TraceNotFound) as caught:
        await store.get("t9")
    assert sink.location in str(caught.value) and f"trace files in {tmp_path}" in str(caught.value)
    with pytest.raises(TraceNotFound, match="nowhere"):
        await TraceStore().get("t9")


async def test_an_update_of_an_unknown_span_without_its_trace_is_dropped(sink: SinkStore) -> None:
    await sink.write_spans([("ghost", SpanUpdate(output={"r": 1}))])
    await sink.write_spans([("s1", SpanUpdate(trace_id="t1", name="late"))])  # names its trace
    await sink.write_traces([_trace("t1")])
    record = await sink.get("t1")
    assert record is not None and [span.id for span in record.spans] == ["s1"]


async def test_a_trace_known_only_from_a_patch_lists_last(sink: SinkStore) -> None:
    await sink.write_traces([("bare", TraceUpdate(name="patched"))])  # no start_time yet
    await sink.write_traces([_trace("t1", 1), _trace("t2", 2)])
    found, total = await sink.search(TraceFilter())
    assert [item.id for item in found] == ["t2", "t1", "bare"] and total == 3
    record = await sink.get("bare")
    assert record is not None and record.trace.name == "patched"
