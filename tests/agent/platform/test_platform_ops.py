"""The standalone platform as an operator runs it: probes, /metrics, JSON logs, drain on SIGTERM.

Real processes: `opik-connect platform` in a subprocess on a loopback port, a real daemon link
in this process (paired through the operator's confirmation), Ollie's sessions against the
scripted Messages API. Every wait ends on a log record or an event.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest
from platform_api_testkit import make_git_repo
from platform_process_kit import WITHIN_S, PlatformProcess, paired_link
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from fixtures.scripted_messages_api import ScriptedMessagesAPI, text_turn, tool_turn
from opik_connect.agent.platform.cli import TOKEN_ENV
from opik_connect.cli import app
from opik_connect.connect.terminal.ask_client import AskError, PlatformAddress, ask_stream
from opik_connect.protocol import (
    CLOSE_DRAINING,
    AskEvent,
    AskRequest,
    ProposalDecided,
    ReadFileArgs,
    ReadFileResult,
)

pytestmark = pytest.mark.timeout(120)

ANSWER = "app.py prints hi."


@pytest.fixture
def repo(tmp_path) -> Path:
    return make_git_repo(tmp_path / "proj", {"app.py": "print('hi')\n"})


@pytest.fixture
def model_api():
    turns = [tool_turn("read_file", {"path": "app.py"}), text_turn(ANSWER, match="tool_result")]
    with ScriptedMessagesAPI(turns * 2) as api:
        yield api


@pytest.fixture
def env(tmp_path, model_api) -> dict[str, str]:
    out = {**os.environ, "OPIK_CONNECT_STATE_DIR": str(tmp_path / "state")}
    out.update(ANTHROPIC_API_KEY="k", ANTHROPIC_BASE_URL=model_api.url)
    for name in ("OPIK_CONNECT_PLATFORM", "OPIK_URL_OVERRIDE"):
        out.pop(name, None)
    return out


class GatedReads:
    """ReadFile that waits for `release` once `gate` is set, so a command can stay in flight."""

    def __init__(self, *, gate: bool) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        if not gate:
            self.release.set()

    async def read_file(self, args: ReadFileArgs) -> ReadFileResult:
        self.started.set()
        await self.release.wait()
        return ReadFileResult(content="print('hi')\n", total_lines=1, truncated=False)


async def ask(platform: PlatformProcess, question: str) -> list[AskEvent]:
    address = PlatformAddress(url=platform.url, token=platform.token)
    return [event async for event in ask_stream(address, AskRequest(question=question))]


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and labels.items() <= dict(sample_labels).items()
    )


SHARED_TOKEN = "t" * 40


async def test_platform_probes_metrics_and_json_logs(repo, env, tmp_path):
    env[TOKEN_ENV] = SHARED_TOKEN
    platform = await PlatformProcess.start(env, repo, 0, "--metrics-port", "0")
    try:
        assert platform.token == SHARED_TOKEN, "replicas can share the operator token"
        health = await platform.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        ready = await platform.get("/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        assert (await platform.get("/metrics")).status_code == 401, "metrics need the token"
        assert (await platform.get("/metrics", token="wrong")).status_code == 401

        reads = GatedReads(gate=False)
        async with paired_link(
            platform, {"ReadFile": reads.read_file}, tmp_path / "p.json"
        ) as link:
            await platform.wait_log(r"^runner ops-runner connected")
            events = await ask(platform, "what does app.py print?")
            assert events[-1].type == "result" and events[-1].data["status"] == "completed"
            session_id = events[-1].session_id
            decided = ProposalDecided(proposal_id="p1", decision="approved")
            await link.send_event("ProposalDecided", decided, wait_ack=True)

            response = await platform.get("/metrics", token=platform.token)
            assert response.status_code == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            samples = scrape(response.text)
            assert total(samples, "opik_connect_runners_connected") == 1
            assert total(samples, "opik_connect_commands_in_flight") == 0
            count = "opik_connect_command_duration_seconds_count"
            assert total(samples, count, command="ReadFile", outcome="ok") == 1
            assert total(samples, "opik_connect_sessions_total") == 1
            assert total(samples, "opik_connect_sessions_active") == 0
            assert total(samples, "opik_connect_sessions_finished_total", status="completed") == 1
            tokens = "opik_connect_model_tokens_total"
            assert total(samples, tokens, kind="input") > 0
            assert total(samples, tokens, kind="output") > 0
            assert total(samples, "opik_connect_model_cost_usd_total") > 0
            assert total(samples, "opik_connect_decisions_total", decision="approved") == 1
            assert total(samples, "opik_connect_draining") == 0
            assert not any("runner-ops" in str(key) or session_id in str(key) for key in samples)

            metrics_line = next(r for r in platform.records if r["message"].startswith("metrics"))
            local = metrics_line["message"].removeprefix("metrics on ")
            async with httpx.AsyncClient(timeout=WITHIN_S) as client:
                open_scrape = await client.get(local)
                elsewhere = await client.get(local.replace("/metrics", "/v1/runners"))
            assert open_scrape.status_code == 200, "the loopback metrics port needs no token"
            assert total(scrape(open_scrape.text), "opik_connect_runners_connected") == 1
            assert elsewhere.status_code == 404, "the metrics port serves /metrics only"

        command = await platform.wait_log(r"^command ReadFile ok")
        assert command["runner_id"] == "runner-ops"
        assert command["session_id"] == session_id
        assert len(command["command_id"]) == 32 and command["seconds"] >= 0
        assert command["request_id"], "the ask's request id follows its session's commands"
        finished = await platform.wait_log(r"^session finished")
        assert (finished["session_id"], finished["status"]) == (session_id, "completed")
    finally:
        code = await platform.terminate()
        platform.kill()
    assert code == 0
    assert platform.raw_lines and all(line.startswith("{") for line in platform.raw_lines)
    gets = [r for r in platform.records if r["message"].startswith("GET /metrics")]
    assert gets and all(r["request_id"] and "Bearer" not in str(r) for r in gets)
    assert not any(platform.token in line for line in platform.raw_lines), "token never logged"
    assert platform.records[-1]["message"] == "stopped"


async def test_sigterm_drains_a_command_in_flight_and_the_daemon_reconnects(repo, env, tmp_path):
    first = await PlatformProcess.start(env, repo, 0, "--drain-timeout", "60")
    second: PlatformProcess | None = None
    reads = GatedReads(gate=True)
    try:
        async with paired_link(first, {"ReadFile": reads.read_file}, tmp_path / "p.json") as link:
            asking = asyncio.create_task(ask(first, "what does app.py print?"))
            async with asyncio.timeout(WITHIN_S):
                await reads.started.wait()
            first.proc.send_signal(signal.SIGTERM)
            draining = await first.wait_log(r"^draining: taking no new work")
            assert (draining["commands_in_flight"], draining["sessions_running"]) == (1, 1)

            ready = await first.get("/readyz")
            assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
            assert (await first.get("/healthz")).status_code == 200
            with pytest.raises(AskError, match="HTTP 503"):
                await ask(first, "a new session while draining")

            reads.release.set()
            events = await asyncio.wait_for(asking, WITHIN_S)
            assert events[-1].type == "result" and events[-1].data["status"] == "completed"
            assert any(event.type == "tool_resulted" for event in events), "the read finished"
            drained = await first.wait_log(r"^drained")
            assert drained["finished"] is True
            assert await first.exited() == 0

            second = await PlatformProcess.start(env, repo, first.port)
            await second.wait_log(r"^runner ops-runner connected")
            async with asyncio.timeout(WITHIN_S):
                await link.connected.wait()
            details = [detail for _state, detail in link.states]  # type: ignore[attr-defined]
            assert any(f"platform draining (close code {CLOSE_DRAINING})" in d for d in details)
            assert link.connections == 2
            events = await ask(second, "and now?")
            assert events[-1].data["status"] == "completed", "the reconnected daemon answers"
    finally:
        first.kill()
        if second is not None:
            assert await second.terminate() == 0
            second.kill()


@pytest.mark.parametrize("stop_by", ["second signal", "deadline"])
async def test_drain_gives_up_on_a_second_signal_or_at_its_deadline(repo, env, tmp_path, stop_by):
    deadline = "600" if stop_by == "second signal" else "0"
    platform = await PlatformProcess.start(env, repo, 0, "--drain-timeout", deadline)
    reads = GatedReads(gate=True)
    try:
        async with paired_link(platform, {"ReadFile": reads.read_file}, tmp_path / "p.json"):
            asking = asyncio.create_task(ask(platform, "what does app.py print?"))
            async with asyncio.timeout(WITHIN_S):
                await reads.started.wait()
            platform.proc.send_signal(signal.SIGTERM)
            await platform.wait_log(r"^draining: taking no new work")
            if stop_by == "second signal":
                platform.proc.send_signal(signal.SIGTERM)
            else:
                await platform.wait_log(r"^drained")
            assert await platform.exited() == 0
            reads.release.set()
            with pytest.raises(AskError, match=str(CLOSE_DRAINING)):
                await asyncio.wait_for(asking, WITHIN_S)
    finally:
        platform.kill()
    drained = [r for r in platform.records if r["message"] == "drained"]
    if stop_by == "deadline":
        assert drained[0]["finished"] is False
        warning = next(r for r in platform.records if r["message"].startswith("drain deadline"))
        assert (warning["level"], warning["commands_in_flight"]) == ("warning", 1)
    else:
        assert not drained, "the second signal stopped the drain"
    ended = next(r for r in platform.records if r["message"] == "session finished")
    assert ended["status"] == "cancelled", "a session cut short is recorded as cancelled"
    assert not [r for r in platform.records if r["level"] == "error"], "and stored without error"


def test_a_short_shared_token_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv(TOKEN_ENV, "short")
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["platform", "--port", "0"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {TOKEN_ENV} must be at least 32 characters "
        "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
    ]
