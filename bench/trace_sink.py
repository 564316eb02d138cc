"""The trace sink under load: batches over real HTTP into its store, then the `traces list` queries.

Run: .venv/bin/python bench/trace_sink.py [--traces 10000] [--spans 20] [--batch 200]
         [--store both|sqlite|postgres|postgresql://...] [--replicas 2]
Prints, per store, the ingest rate (traces and spans per second, with retention on) and the median
time of each filtered search at that size; with both stores, PostgreSQL's figures as ratios to
SQLite's measured in the same run. On PostgreSQL, --replicas sink servers (each its own store
and pool, as platform replicas have) take the batches at once. `postgres` starts a throwaway
server as the tests do. The load average is printed: the machine may be shared. Not part of the
test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from opik_connect.agent.traces.sink_http import TraceSinkServer
from opik_connect.agent.traces.sink_models import TraceFilter
from opik_connect.agent.traces.sink_store import SinkStore, open_sink_store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from postgres_kit import PostgresServer, start_any_server

TOKEN = "bench-token"
QUERIES = {
    "newest 20": TraceFilter(),
    "name": TraceFilter(name="agent3"),
    "tag": TraceFilter(tag="tag4"),
    "has_error": TraceFilter(has_error=True),
    "text": TraceFilter(text="question 9999"),
}


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


async def _feed(url: str, starts: list[int], batch: int, spans: int) -> None:
    """One SDK's worth of writes: each batch's spans, then its traces."""
    headers = {"authorization": TOKEN}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        for start in starts:
            traces, chunks = _batch(start, batch, spans)
            for chunk in chunks:
                (await client.post("/v1/private/spans/batch", json=chunk)).raise_for_status()
            (await client.post("/v1/private/traces/batch", json=traces)).raise_for_status()


async def _case(stores: list[SinkStore], total: int, spans: int, batch: int) -> dict[str, float]:
    """Ingest through one sink server per store (batches dealt round-robin), then search."""
    figures: dict[str, float] = {}
    servers = [TraceSinkServer(store, TOKEN) for store in stores]
    for server in servers:
        await server.start()
    try:
        starts = list(range(0, total, batch))
        started = time.perf_counter()
        await asyncio.gather(
            *(
                _feed(server.url, starts[i :: len(servers)], batch, spans)
                for i, server in enumerate(servers)
            )
        )
        elapsed = time.perf_counter() - started
        await _searches(stores[0], total, spans, figures)
    finally:
        for server in servers:
            await server.stop()
    return {"traces/s": total / elapsed, "spans/s": total * spans / elapsed, **figures}


async def _searches(store: SinkStore, total: int, spans: int, figures: dict[str, float]) -> None:
    """Median times of the `traces list` filters and of one trace's read."""
    for label, query in QUERIES.items():
        times = []
        for _ in range(9):
            t0 = time.perf_counter()
            await store.search(query)
            times.append(time.perf_counter() - t0)
        figures[f"search {label} ms"] = statistics.median(times) * 1000
    times = []
    for n in range(9):
        t0 = time.perf_counter()
        await store.get(f"t{total - 1 - n}")
        times.append(time.perf_counter() - t0)
    figures[f"get (a trace, {spans} spans) ms"] = statistics.median(times) * 1000


async def _sqlite(total: int, spans: int, batch: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_sink_store(Path(tmp) / "platform.sqlite3", max_traces=total // 2)
        try:
            return await _case([store], total, spans, batch)
        finally:
            await store.close()


async def _postgres(dsn: str, total: int, spans: int, batch: int, replicas: int):
    stores = [await open_sink_store(dsn, max_traces=total // 2) for _ in range(replicas)]
    try:
        return await _case(stores, total, spans, batch)
    finally:
        for store in stores:
            await store.close()


def _load() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def _print(columns: dict[str, dict[str, float]]) -> None:
    labels = list(columns)
    print(f"{'':>28}" + "".join(f"{label:>18}" for label in labels), end="")
    print(f"{'ratio':>10}" if len(labels) == 2 else "")
    for row in next(iter(columns.values())):
        values = [columns[label][row] for label in labels]
        line = f"{row:>28}" + "".join(f"{value:>18,.1f}" for value in values)
        if len(values) == 2:
            line += f"{values[1] / values[0]:>10.2f}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traces", type=int, default=10_000)
    parser.add_argument("--spans", type=int, default=20)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--store", default="both", help="both, sqlite, postgres or a URL")
    parser.add_argument("--replicas", type=int, default=2, help="PostgreSQL sink servers")
    args = parser.parse_args()
    print(f"{args.traces} traces x {args.spans} spans, batches of {args.batch}, "
          f"retention keeps {args.traces // 2}; load average before: {_load()}")  # fmt: skip
    columns: dict[str, dict[str, float]] = {}
    if args.store in ("both", "sqlite"):
        columns["sqlite"] = asyncio.run(_sqlite(args.traces, args.spans, args.batch))
    if args.store != "sqlite":
        server: PostgresServer | None = None
        dsn = args.store
        if args.store in ("both", "postgres"):
            server = start_any_server()
            dsn = server.dsn(server.create_database())
        try:
            label = f"postgres x{args.replicas}"
            columns[label] = asyncio.run(
                _postgres(dsn, args.traces, args.spans, args.batch, args.replicas)
            )
        finally:
            if server is not None:
                server.stop()
    _print(columns)
    print(f"load average after: {_load()} (1/5/15 min); ratio = postgres / sqlite, same run")


if __name__ == "__main__":
    main()
