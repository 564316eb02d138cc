"""Suite runs the daemon starts log, with no Opik server configured, to its platform's trace
sink through the real opik SDK: every trace tagged with its suite, item, run and suite run."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from platform_api_testkit import embedded_platform
from rich.console import Console
from suite_testkit import git
from traced_project_testkit import make_traced_project

from opik_connect.agent.traces.sink_models import TraceFilter
from opik_connect.connect.fixes.daemon_wiring import FixParts
from opik_connect.protocol import RunSuiteArgs

pytest.importorskip("opik")
pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("no_ambient_settings")]


@pytest.fixture
def traced_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_traced_project(tmp_path, monkeypatch)


async def test_run_suite_from_the_platform_logs_each_run_to_the_sink(
    traced_project: Path,
) -> None:
    out = io.StringIO()
    fixes = FixParts(console=Console(file=out, width=300), terminal=False, judge=None)
    async with embedded_platform(traced_project, parts=fixes.parts) as p:
        assert p.daemon.platform is not None
        runner = await p.daemon.platform.wait_runner(p.daemon.identity.runner_id)
        summary = await runner.run_suite(RunSuiteArgs(suite="smoke"))
        sink = p.services.trace_sink
        assert sink is not None
        sink_url = sink.url
        found, total = await sink.store.search(TraceFilter(tag=f"suite-run:{summary.run_id}"))
        records = [await sink.store.get(t.id) for t in found]
        other, _ = await sink.store.search(TraceFilter(tag="suite-run:nope"))

    assert summary.status == "failed"
    assert f"traces → the platform's sink at {sink_url}" in out.getvalue()
    assert total == 4 and not other, "each run's trace, linked to this suite run only"
    commit = git(traced_project, "rev-parse", "HEAD")[:12]
    tags = sorted(sorted(r.trace.tags or []) for r in records if r is not None)
    assert tags[0] == sorted(
        [
            "opik-connect-suite",
            "suite:smoke",
            "item:q0",
            "run:1",
            f"suite-run:{summary.run_id}",
            f"commit:{commit}",
        ]
    )
    assert sorted(f"{t[1]} {t[3]}" for t in tags) == [
        "item:q0 run:1",
        "item:q0 run:2",
        "item:q1 run:1",
        "item:q1 run:2",
    ]
    failed = [r for r in records if r is not None and "item:q1" in (r.trace.tags or [])]
    assert len(failed) == 2 and all(r.trace.error_info for r in failed), (
        "the trace of a failed run is there to open"
    )
    assert {r.trace.project_name for r in records if r is not None} == {"shop-suites"}
    run_traces = {run.trace_id for item in summary.items for run in item.runs}
    assert run_traces == {r.trace.id for r in records if r is not None}, (
        "each run's result names its trace"
    )
