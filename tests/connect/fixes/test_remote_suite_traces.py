"""A daemon paired with a remote platform logs its suite runs' traces to that platform's sink,
through the real opik SDK, with the runner key its Welcome granted: writes only, and a wrong or
expired key gets a 401 in Opik's error shape. A connection that outlives its key mints the next."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from traced_project_testkit import make_traced_project

from opik_connect.agent.platform.server import Platform
from opik_connect.agent.platform.services import PlatformServices
from opik_connect.agent.traces.sink_keys import check_sink_key
from opik_connect.agent.traces.sink_models import TraceFilter
from opik_connect.config import ProjectConfig
from opik_connect.connect.daemon import Daemon
from opik_connect.connect.fixes.daemon_wiring import FixParts
from opik_connect.link.sink_key import KEY_TTL_S, issue_sink_key
from opik_connect.protocol import RunSuiteArgs

pytest.importorskip("opik")
pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("no_ambient_settings")]


async def test_a_paired_remote_daemon_logs_suite_traces_with_its_runner_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_traced_project(tmp_path, monkeypatch)
    platform = Platform()
    services = PlatformServices(env={}, store=tmp_path / "platform" / "platform.sqlite3")
    await services.setup(platform)
    await platform.start()
    out = io.StringIO()
    fixes = FixParts(console=Console(file=out, width=300), terminal=False, judge=None)
    codes: asyncio.Queue[str] = asyncio.Queue()
    daemon = Daemon(
        root,
        ProjectConfig(),
        platform_url=platform.url,
        handlers=None,
        parts=fixes.parts,
        on_pair_code=lambda code, expires_at: codes.put_nowait(code),
    )
    try:
        async with daemon:
            platform.confirm_pairing(await codes.get())  # the operator, as `platform pair`
            runner = await platform.wait_runner(daemon.identity.runner_id)
            await daemon.wait_connected(10)
            assert daemon.platform is None and daemon.link is not None, "a remote platform"
            grant = daemon.link.trace_sink()
            assert grant is not None and grant.key.startswith("ocsk1.")
            assert grant.key != platform.operator_token
            summary = await runner.run_suite(RunSuiteArgs(suite="smoke"))
            renewed, later = renewal_after_a_day(daemon, monkeypatch)
        sink = services.trace_sink
        assert sink is not None
        found, total = await sink.store.search(TraceFilter(tag=f"suite-run:{summary.run_id}"))
        records = [await sink.store.get(t.id) for t in found]
        refusals = await refused_keys(sink.url, platform, daemon.identity.runner_id, grant.key)
        after, _ = await sink.store.search(TraceFilter(tag="refused"))
    finally:
        await platform.stop()
        await services.aclose()

    assert summary.status == "failed"
    assert f"traces → the platform's sink at http://127.0.0.1:{grant.port}/api" in out.getvalue()
    assert grant.key not in out.getvalue(), "the key is never printed"
    assert total == 4, "each run's trace, logged with the runner key"
    run_traces = {run.trace_id for item in summary.items for run in item.runs}
    assert run_traces == {r.trace.id for r in records if r is not None}
    assert all("suite:smoke" in (r.trace.tags or []) for r in records if r is not None)
    for label, (status, body) in refusals.items():
        expected = 403 if label == "read with the runner key" else 401
        assert status == expected, label
        assert body["code"] == expected and body["message"] and body["errors"], label
    assert "expired" in refusals["expired key"][1]["message"]
    assert after == [], "a refused write stores nothing"
    assert "longer than a day" in refusals["key living two days"][1]["message"]
    assert renewed.key != grant.key and renewed.expires_at > grant.expires_at
    link_key = await platform.link_key(daemon.identity.runner_id)

    async def paired_key(runner_id: str) -> bytes | None:
        return link_key

    accepted = await check_sink_key(renewed.key, paired_key, later)
    assert accepted.runner_id == daemon.identity.runner_id, "the daemon's own renewal is valid"


def renewal_after_a_day(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, float]:
    """The grant a connection that has lasted almost a day hands its next suite run."""
    assert daemon.link is not None
    later = time.time() + KEY_TTL_S - 60
    with monkeypatch.context() as clock:
        clock.setattr(time, "time", lambda: later)
        renewed = daemon.link.trace_sink()
    assert renewed is not None
    return renewed, later


async def refused_keys(
    url: str, platform: Platform, runner_id: str, good: str
) -> dict[str, tuple[int, dict]]:
    """What the sink answers a write with a bad key, and a read with the runner's key."""
    link_key = await platform.link_key(runner_id)
    assert link_key is not None
    expired = issue_sink_key(runner_id, link_key, int(time.time()) - 1)
    forged = issue_sink_key(runner_id, b"not the link key", int(time.time()) + 60)
    other = issue_sink_key("someone-else", link_key, int(time.time()) + 60)
    two_days = issue_sink_key(runner_id, link_key, int(time.time()) + 2 * KEY_TTL_S)
    trace = {"traces": [{"id": "01a20000-0000-7000-8000-000000000001", "name": "x",
                         "start_time": "2026-12-05T00:00:00Z", "tags": ["refused"]}]}  # fmt: skip
    answers = {}
    async with httpx.AsyncClient(base_url=url) as client:
        for label, key in (
            ("expired key", expired),
            ("forged key", forged),
            ("another runner's key", other),
            ("key living two days", two_days),
            ("operator-shaped guess", "ocsk1.garbage"),
        ):
            response = await client.post(
                "/v1/private/traces/batch", json=trace, headers={"Authorization": key}
            )
            answers[label] = (response.status_code, response.json())
        read = await client.get("/v1/private/traces", headers={"Authorization": good})
        answers["read with the runner key"] = (read.status_code, read.json())
    return answers
