"""An https sink with a self-signed certificate, reached by a daemon that runs with --insecure:
the suite workers' real SDK skips the certificate check too, else it drops every trace."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from tls_testkit import self_signed_context

from opik_connect.agent.traces.sink_http import TraceSinkServer
from opik_connect.agent.traces.sink_models import TraceFilter
from opik_connect.agent.traces.sink_store_sqlite import SqliteSinkStore
from opik_connect.config import OpikSettings, ProjectConfig
from opik_connect.connect.suites.suite_tracing import TraceSink, suite_tracing

pytest.importorskip("opik")
pytestmark = pytest.mark.timeout(120)

LOG_ONE_TRACE = "import opik\nclient = opik.Opik()\nclient.trace(name='{name}')\nclient.flush()\n"


async def test_an_insecure_link_lets_the_sdk_log_to_a_self_signed_sink(tmp_path: Path) -> None:
    store = await SqliteSinkStore.open(tmp_path / "traces.sqlite3")
    try:
        async with TraceSinkServer(
            store, "platform-token", ssl_context=self_signed_context(tmp_path)
        ) as server:
            assert server.url.startswith("https://")
            lax = TraceSink(server.url, "platform-token", verify_tls=False)
            strict = TraceSink(server.url, "platform-token")
            line = await asyncio.gather(
                log_one(tmp_path, lax, "unverified"), log_one(tmp_path, strict, "verified")
            )
            found, _ = await store.search(TraceFilter())
    finally:
        await store.close()
    assert line[0].endswith("(certificate not verified: --insecure)")
    assert [trace.name for trace in found] == ["unverified"], "a checked self-signed cert fails"


async def log_one(tmp_path: Path, sink: TraceSink, name: str) -> str:
    """One trace from the real SDK in a subprocess, in the environment a suite worker gets."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    tracing = suite_tracing(tmp_path, ProjectConfig(), OpikSettings(), env, sink)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOG_ONE_TRACE.format(name=name),
        env=tracing.env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert await proc.wait() == 0
    return tracing.destination
