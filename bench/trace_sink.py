"""The trace sink under load: batches over real HTTP into SQLite, then the `traces list` queries.

Run: .venv/bin/python bench/trace_sink.py [--traces 10000] [--spans 20] [--batch 200]
Prints ingest rate (traces and spans per second, with retention on) and the median time of each
filtered search at that size. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from opik_connect.agent.traces.sink_http import TraceSinkServer
from opik_connect.agent.traces.sink_models import TraceFilter
from opik_connect.agent.traces.sink_store import SinkStore

TOKEN = "bench-token"


def _at(n: int) -> str:
    day, hour, minute = 1 + n // 86400 % 28, n // 3600 % 24, n // 60 % 60
    return f"2026-01-{day:02d}T{hour:02d}:{minute:02d}:{n % 60:02d}Z"


def _batch(start: int, count: int, spans: int) -> tuple[dict, list[dict]]:
    traces, items = [], []
    for n in range(start, start + count):
        error = {"exception_type": "KeyError", "message": "k"} if n % 50 == 0 else None
        traces.append({"id": f"t{n}", "name": f"agent{n % 5}", "start_time": _at(n),
                       "end_time": _at(n + 1), "tags": [f"tag{n % 7}"],
                       "input": {"q": f"question {n} about refunds"},
                       "output": {"a": "ok"}})  # fmt: skip
        for m in range(spans):
            items.append({"id": f"s{n}-{m}", "trace_id": f"t{n}", "name": f"step{m}",
                          "type": "llm" if m == 1 else "general", "start_time": _at(n),
                          "input": {"m": m}, "output": {"r": "x" * 200},
                          "error_info": error if m == spans - 1 else None})  # fmt: skip
    chunks = [{"spans": items[i : i + 1000]} for i in range(0, len(items), 1000)]
    return {"traces": traces}, chunks


async def main(total: int, spans: int, batch: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await SinkStore.open(Path(tmp) / "sink.sqlite3", max_traces=total // 2)
        async with TraceSinkServer(store, TOKEN) as server:
            headers = {"authorization": TOKEN}
            async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as c:
                started = time.perf_counter()
                for start in range(0, total, batch):
                    traces, chunks = _batch(start, batch, spans)
                    for chunk in chunks:
                        (await c.post("/v1/private/spans/batch", json=chunk)).raise_for_status()
                    (await c.post("/v1/private/traces/batch", json=traces)).raise_for_status()
                elapsed = time.perf_counter() - started
            print(
                f"ingest: {total} traces, {total * spans} spans in {elapsed:.1f}s = "
                f"{total / elapsed:,.0f} traces/s, {total * spans / elapsed:,.0f} spans/s "
                f"(retention keeps {total // 2})"
            )
            queries = {
                "newest 20": TraceFilter(),
                "name": TraceFilter(name="agent3"),
                "tag": TraceFilter(tag="tag4"),
                "has_error": TraceFilter(has_error=True),
                "text": TraceFilter(text="question 9999"),
            }
            for label, query in queries.items():
                times = []
                for _ in range(9):
                    t0 = time.perf_counter()
                    await store.search(query)
                    times.append(time.perf_counter() - t0)
                print(f"search {label:>10}: median {statistics.median(times) * 1000:.1f} ms")
            t0 = time.perf_counter()
            await store.get(f"t{total - 1}")
            print(f"get one trace with {spans} spans: {(time.perf_counter() - t0) * 1000:.1f} ms")
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=10_000)
    parser.add_argument("--spans", type=int, default=20)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.traces, args.spans, args.batch))
