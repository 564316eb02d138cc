"""What the trace sink keeps (the SinkStore protocol) and how its backend is chosen and opened.

Two backends implement it with the same behaviour (one test suite runs against both): SQLite
(sink_store_sqlite.py), a file per platform process and the default, and PostgreSQL
(sink_store_postgres.py), shared by a team's platform replicas, so a trace logged through one
replica is read through any other. The platform's `--store` picks both stores at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from opik_connect.agent.platform.store import is_postgres_url, postgres_extra_missing
from opik_connect.agent.traces.sink_models import (
    ScoreWrite,
    SpanUpdate,
    SpanWrite,
    TraceFilter,
    TraceSummary,
    TraceUpdate,
    TraceWrite,
)
from opik_connect.agent.traces.sink_store_logic import DEFAULT_MAX_TRACES
from opik_connect.agent.traces.sink_store_sqlite import SINK_FILENAME, SqliteSinkStore
from opik_connect.agent.traces.store import TraceWithSpans


class SinkStore(Protocol):
    """Traces, spans and feedback scores the Opik SDK logged, merged by id as Opik's server does.

    A write replaces the fields it carries and keeps the rest; a span update that names no trace
    and finds no span is dropped; a score replaces the one of the same name on the same target;
    past `max_traces` the oldest traces go with their spans and scores. Each call is one
    transaction, and concurrent writers (other replicas) lose none of each other's fields.
    """

    @property
    def location(self) -> str:
        """Where the traces are kept, for a 'not found' the user can act on."""
        ...

    async def close(self) -> None: ...

    async def write_traces(
        self, traces: Sequence[TraceWrite | tuple[str, TraceUpdate]]
    ) -> None: ...

    async def write_spans(self, spans: Sequence[SpanWrite | tuple[str, SpanUpdate]]) -> None: ...

    async def write_scores(self, entity: str, scores: Sequence[ScoreWrite]) -> None:
        """Feedback scores on traces or spans (`entity`)."""
        ...

    async def get(self, trace_id: str) -> TraceWithSpans | None:
        """The trace with its spans and feedback scores, in TracePublic/SpanPublic shape."""
        ...

    async def search(self, query: TraceFilter) -> tuple[list[TraceSummary], int]:
        """Matching traces, newest first, and how many match in all."""
        ...


async def open_sink_store(
    location: str | Path | None = None, *, max_traces: int = DEFAULT_MAX_TRACES
) -> SinkStore:
    """The sink beside the platform store at `location`: the same PostgreSQL database for a
    postgresql:// URL; else traces.sqlite3 beside the SQLite file (the state dir's when None)."""
    if is_postgres_url(location):
        try:
            from opik_connect.agent.traces.sink_store_postgres import PostgresSinkStore
        except ImportError as exc:
            raise postgres_extra_missing(exc) from exc
        return await PostgresSinkStore.open(str(location), max_traces=max_traces)
    path = Path(location).with_name(SINK_FILENAME) if location else None
    return await SqliteSinkStore.open(path, max_traces=max_traces)
