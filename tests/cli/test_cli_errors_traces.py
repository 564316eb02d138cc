"""`opik-connect traces` without a platform or with bad filters: one error line, exit 2 (the
convention's usage and environment code); and the env lines quote what a shell would split."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opik_connect.agent.traces.sink_models import SpanWrite, TraceWrite
from opik_connect.agent.traces.sink_store_sqlite import SqliteSinkStore, default_sink_path
from opik_connect.agent.traces.traces_cli import env_lines
from opik_connect.cli import app


@pytest.fixture(autouse=True)
def no_platform(state_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OPIK_CONNECT_PLATFORM", raising=False)
    monkeypatch.delenv("OPIK_CONNECT_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("args", [["env"], ["list"], ["show", "t1"]])
def test_no_running_platform_is_one_error_line(args: list[str]) -> None:
    result = CliRunner().invoke(app, ["traces", *args])
    assert result.exit_code == 2
    assert "no running platform found" in result.output


def test_a_bad_since_is_named() -> None:
    result = CliRunner().invoke(app, ["traces", "list", "--since", "yesterday"])
    assert result.exit_code == 2
    assert "since: 'yesterday' is neither ISO 8601 nor an age like 2h or 7d" in result.output


def test_env_lines_are_shell_quoted() -> None:
    assert env_lines("http://127.0.0.1:5/api", "a b'c") == [
        "export OPIK_URL_OVERRIDE=http://127.0.0.1:5/api",
        "export OPIK_API_KEY='a b'\"'\"'c'",
        "export OPIK_WORKSPACE=default",
    ]


def test_with_no_platform_list_and_show_read_the_sink_file(state_dir: Path) -> None:
    """A suite run's trace stays one `traces show ID` away after the daemon stopped."""

    async def log() -> None:
        store = await SqliteSinkStore.open(default_sink_path())
        try:
            start = "2026-12-05T01:00:00Z"
            await store.write_traces(
                [
                    TraceWrite.model_validate(
                        {
                            "id": "t-1",
                            "name": "answer",
                            "start_time": start,
                            "tags": ["suite-run:r1"],
                        }
                    )
                ]
            )
            await store.write_spans(
                [
                    SpanWrite.model_validate(
                        {
                            "id": "s-1",
                            "trace_id": "t-1",
                            "name": "lookup",
                            "type": "tool",
                            "start_time": start,
                        }
                    )
                ]
            )
        finally:
            await store.close()

    asyncio.run(log())
    runner = CliRunner()
    listed = runner.invoke(app, ["traces", "list", "--tag", "suite-run:r1"])
    assert listed.exit_code == 0, listed.output
    assert "t-1" in listed.output and "1 of 1 trace(s)" in listed.output
    assert f"no platform running: reading {default_sink_path()}" in listed.output
    shown = runner.invoke(app, ["traces", "show", "t-1"])
    assert shown.exit_code == 0 and "lookup [tool]" in shown.output
    unknown = runner.invoke(app, ["traces", "show", "t-2"])
    assert unknown.exit_code == 1 and "trace 't-2' not found in" in unknown.output
    named = runner.invoke(app, ["traces", "list", "--platform", "ws://127.0.0.1:9"])
    assert named.exit_code == 2, "a named platform is never replaced by the file"
