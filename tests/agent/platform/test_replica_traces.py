"""Traces logged through one platform replica are read through another (PostgreSQL sink).

Two real replicas on one PostgreSQL, each with its own trace sink server. A real `@opik.track`
agent (the `opik` SDK, in a subprocess) logs to replica A's sink with the write-only sink key A
granted a paired runner; replica B then finds the same traces for Ollie (its trace store and
search, what get_trace and search_traces read) and serves them on its own sink's read API to
the operator token, while the runner's key still may not read there. Behind a load balancer the
SDK's writes may reach B instead: B takes the key A granted, and A reads what B took in.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import httpx
import pytest
from replica_testkit import replica

from opik_connect.agent.platform.server import Platform
from opik_connect.agent.platform.services import PlatformServices
from opik_connect.agent.traces.sink_models import TraceFilter
from opik_connect.agent.traces.store import TraceStore
from opik_connect.agent.traces.trace_search import search_traces
from opik_connect.link.auth import new_activation_key
from opik_connect.link.sink_key import issue_sink_key

pytest.importorskip("opik")
pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("no_ambient_settings")]

AGENT = Path(__file__).parents[1] / "traces" / "sdk_agent.py"


async def _sdk_agent(sink_url: str, key: str, argument: str, home: Path) -> str:
    """The SDK agent, pointed at `sink_url` with `key`: no other Opik setting reaches it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPIK_") or "CONNECT" in k}
    env.update(
        HOME=str(home), OPIK_URL_OVERRIDE=sink_url, OPIK_API_KEY=key, OPIK_WORKSPACE="default"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(AGENT), argument, env=env, cwd=home, stdout=-1, stderr=-1
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def _sink_key(platform: Platform, runner_id: str) -> str:
    link_key = await platform.link_key(runner_id)
    assert link_key is not None
    return issue_sink_key(runner_id, link_key, int(time.time()) + 600)


def _sink_url(services: PlatformServices) -> str:
    assert services.trace_sink is not None
    return services.trace_sink.url


async def test_replica_b_reads_the_traces_logged_through_replica_a(
    tmp_path: Path, postgres_dsn: str
) -> None:
    async with (
        replica(postgres_dsn, traces=TraceStore()) as (a, a_services),
        replica(postgres_dsn, traces=TraceStore()) as (b, b_services),
    ):
        assert _sink_url(a_services) != _sink_url(b_services)
        a.pre_pair("runner-1", new_activation_key(), project="shop")
        await a.pairings.settled()
        key = await _sink_key(a, "runner-1")

        await _sdk_agent(_sink_url(a_services), key, "where is my refund", tmp_path)
        trace_id = (await _sdk_agent(_sink_url(b_services), key, "--client", tmp_path)).strip()

        # Ollie on B (and on A): the trace store and search its tools read.
        found, total = await search_traces(b_services.traces, TraceFilter())
        assert total == 2 and trace_id in [item.id for item in found]
        errored, _ = await search_traces(b_services.traces, TraceFilter(has_error=True))
        (refund,) = errored
        assert refund.feedback_scores == {"correct": 0.0}
        on_b = await b_services.traces.get(refund.id)
        assert [s.name for s in on_b.spans] == ["support_agent", "lookup_policy", "call_model"]
        assert on_b == await a_services.traces.get(refund.id)

        patched = await b_services.traces.get(trace_id)
        assert patched.trace.output == {"a": "patched"}  # the PATCH, not the first write
        (span,) = patched.spans
        assert span.metadata == {"checked": True} and span.output == {"y": 2}
        assert [(s.name, s.value) for s in span.feedback_scores or []] == [("useful", 0.75)]
        assert patched == await a_services.traces.get(trace_id)
        assert await search_traces(a_services.traces, TraceFilter()) == (found, total)

        # B's sink read API: the operator's token reads what A took in; the runner's key may not.
        async with httpx.AsyncClient(base_url=_sink_url(b_services), timeout=30) as client:
            path = f"/v1/private/traces/{trace_id}"
            response = await client.get(path, headers={"authorization": b.operator_token})
            assert response.status_code == 200
            assert response.json()["output"] == {"a": "patched"}
            response = await client.get(path, headers={"authorization": key})
            assert response.status_code == 403 and response.json()["code"] == 403
            page = await client.get(
                "/v1/private/traces", headers={"authorization": b.operator_token}
            )
            assert page.json()["total"] == 2
