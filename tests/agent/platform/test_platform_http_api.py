"""The platform's HTTP API over real HTTP and websockets: auth, streaming, reads, errors.

The platform's HTTP API over real HTTP and websockets, on an embedded platform a real daemon
connected to. Sessions here run a stand-in driver (Ollie itself is exercised in
test_ask_with_ollie.py), so these tests pin the API: auth, streaming, reads, errors.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path

import httpx
import pytest
from platform_api_testkit import approved, embedded_platform, make_git_repo, suite_run
from pydantic import BaseModel
from rich.console import Console
from websockets.asyncio.client import connect

from opik_connect.agent.ollie.sessions import NO_API_KEY_MESSAGE, SessionContext, SessionOutcome
from opik_connect.agent.platform.run_file import find_run_file, run_file_paths
from opik_connect.agent.platform.store_schema import StoreError
from opik_connect.cli_errors import EXIT_USAGE, CliError
from opik_connect.connect.terminal.ask_cli import run_ask
from opik_connect.connect.terminal.ask_client import (
    AskError,
    PlatformAddress,
    ask_stream,
    follow_stream,
    locate_platform,
    read_json,
)
from opik_connect.connect.terminal.ollie_prompt import daemon_asker, ollie_terminal_part
from opik_connect.protocol import (
    AskEvent,
    AskRequest,
    SuiteResult,
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def state_dir(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared tmp state dir, and no ambient platform address or token."""
    monkeypatch.delenv("OPIK_CONNECT_PLATFORM", raising=False)
    monkeypatch.delenv("OPIK_CONNECT_TOKEN", raising=False)
    return state_dir


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_git_repo(tmp_path / "project")


class StandInDriver:
    """Emits two steps and answers; `gate` (if given) holds the session open after step one."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.gate = gate
        self.contexts: list[SessionContext] = []

    async def __call__(self, context: SessionContext) -> SessionOutcome:
        self.contexts.append(context)
        await context.emit("tool_called", {"name": "get_trace", "input": {}})
        if self.gate is not None:
            await self.gate.wait()
        await context.emit("final_answer", {"text": "the refund tool adds cents twice"})
        return SessionOutcome(
            status="completed",
            final_answer="the refund tool adds cents twice",
            usage={"input_tokens": 3},
            transcript_path="/tmp/t.jsonl",
        )


async def collect(stream) -> list[AskEvent]:
    return [event async for event in stream]


async def test_every_api_path_needs_the_right_bearer_token(repo: Path) -> None:
    async with embedded_platform(repo, StandInDriver()) as p:
        url = p.address.http_url("/v1/runners")
        async with httpx.AsyncClient() as client:
            for headers in (
                {},
                {"Authorization": "Bearer wrong-token"},
                {"Authorization": f"Basic {p.address.token}"},
                {"Authorization": f"Bearer {p.address.token}x"},
            ):
                response = await client.get(url, headers=headers)
                assert response.status_code == 401, headers
                assert response.json()["error"]["code"] == "auth_failed"
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
            response = await client.get(url, headers=p.address.headers)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        [runner] = response.json()
        assert runner["runner_id"] == p.daemon.identity.runner_id
        assert runner["connected"] is True

        wrong = PlatformAddress(url=p.address.url, token="wrong")
        with pytest.raises(AskError, match="401"):
            await collect(ask_stream(wrong, AskRequest(question="hi")))
        with pytest.raises(AskError, match="401"):
            await read_json(wrong, "/v1/sessions")


async def test_ask_streams_the_session_and_the_store_keeps_it(repo: Path) -> None:
    driver = StandInDriver()
    async with embedded_platform(repo, driver) as p:
        request = AskRequest(question="why?", trace_id="t1", suite="refunds", case_ids=["c1", "c2"])
        events = await collect(ask_stream(p.address, request))
        assert [e.type for e in events] == ["accepted", "tool_called", "final_answer", "result"]
        assert [e.seq for e in events] == [1, 2, 3, 4]
        session_id = events[0].session_id
        assert session_id and all(e.session_id == session_id for e in events)
        assert events[0].data["runner_id"] == p.daemon.identity.runner_id
        result = events[-1].data
        assert (result["status"], result["final_answer"]) == (
            "completed",
            "the refund tool adds cents twice",
        )
        assert driver.contexts[0].request == request
        assert driver.contexts[0].runner.runner_id == p.daemon.identity.runner_id

        [listed] = await read_json(p.address, "/v1/sessions")
        assert listed["id"] == session_id
        detail = await read_json(p.address, f"/v1/sessions/{session_id}")
        session = detail["session"]
        assert (session["question"], session["trace_id"], session["suite"]) == (
            "why?",
            "t1",
            "refunds",
        )
        assert session["case_ids"] == ["c1", "c2"]
        assert session["status"] == "completed"
        assert session["usage"] == {"input_tokens": 3}
        assert session["transcript_path"] == "/tmp/t.jsonl"
        assert session["finished_at"] >= session["started_at"]
        assert [e["type"] for e in detail["events"]] == [e.type for e in events]


async def test_a_second_listener_gets_the_whole_stream(repo: Path) -> None:
    gate = asyncio.Event()
    async with embedded_platform(repo, StandInDriver(gate)) as p:
        first: list[AskEvent] = []
        started = asyncio.Event()

        async def ask() -> None:
            async for event in ask_stream(p.address, AskRequest(question="why?")):
                first.append(event)
                if len(first) == 2:
                    started.set()

        asker = asyncio.create_task(ask())
        await started.wait()
        second: list[AskEvent] = []
        caught_up = asyncio.Event()

        async def follow() -> None:
            """Joins while the session waits at the gate: it must be replayed what came first."""
            async for event in follow_stream(p.address, first[0].session_id or ""):
                second.append(event)
                if len(second) == 2:
                    caught_up.set()

        follower = asyncio.create_task(follow())
        await caught_up.wait()
        gate.set()
        await asker
        await follower
        assert [e.model_dump() for e in second] == [e.model_dump() for e in first]
        assert second[-1].type == "result"


async def test_daemon_events_land_in_the_store_and_the_read_endpoints(repo: Path) -> None:
    async with embedded_platform(repo, StandInDriver()) as p:
        before = suite_run("r-before", "failed")
        after = suite_run("r-after", "passed", tree="opik/fix/p1")
        await p.daemon.send_event("SuiteResult", SuiteResult(run=before))
        decided = approved("opik/fix/p1", "abc", after)
        await p.daemon.send_event("ProposalDecided", decided)
        await p.services.wait_recorded("ProposalDecided")
        [fix] = await read_json(p.address, "/v1/fixes")
        assert (fix["proposal_id"], fix["branch"], fix["commit"]) == ("p1", "opik/fix/p1", "abc")
        assert (fix["before_status"], fix["after_status"]) == ("failed", "passed")
        [decision] = await read_json(p.address, "/v1/decisions")
        assert decision["decision"] == decided.model_dump(mode="json")
        runs = await read_json(p.address, "/v1/suite-results", suite="refunds")
        assert [(r["run"]["run_id"], r["proposal_id"]) for r in runs] == [
            ("r-before", None),
            ("r-after", "p1"),
        ]
        only_fix = await read_json(p.address, "/v1/suite-results", proposal_id="p1")
        assert [r["run"]["run_id"] for r in only_fix] == ["r-after"]
        assert await read_json(p.address, "/v1/proposals") == []


async def test_an_event_the_store_cannot_write_is_logged_and_the_next_one_recorded(
    repo: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with embedded_platform(repo, StandInDriver()) as p:
        record_event = p.store.record_event

        async def full_for_suite_results(runner_id: str, event: BaseModel) -> None:
            if isinstance(event, SuiteResult):
                raise StoreError("disk full")
            await record_event(runner_id, event)

        monkeypatch.setattr(p.store, "record_event", full_for_suite_results)
        await p.daemon.send_event("SuiteResult", SuiteResult(run=suite_run("r-before", "failed")))
        decided = approved("opik/fix/p1", "abc", suite_run("r-after", "passed", tree="opik/fix/p1"))
        await p.daemon.send_event("ProposalDecided", decided)
        await p.services.wait_recorded("ProposalDecided")
        assert "recording a SuiteResult event failed" in caplog.text
        assert "disk full" in caplog.text
        [decision] = await read_json(p.address, "/v1/decisions")
        assert decision["decision"] == decided.model_dump(mode="json")


async def test_without_a_key_nothing_answers_and_no_session_starts(repo: Path) -> None:
    driver = StandInDriver()
    async with embedded_platform(repo, driver, env={}) as p:
        [event] = await collect(ask_stream(p.address, AskRequest(question="why?")))
        assert event.type == "error"
        assert event.data["code"] == "no_api_key"
        assert "export ANTHROPIC_API_KEY=" in event.data["message"]
        assert event.data["message"] == NO_API_KEY_MESSAGE
        assert driver.contexts == []
        assert await read_json(p.address, "/v1/sessions") == []


async def test_unknown_runner_and_bad_requests_are_named_errors(repo: Path) -> None:
    async with embedded_platform(repo, StandInDriver()) as p:
        [event] = await collect(ask_stream(p.address, AskRequest(question="q", runner="nope")))
        assert (event.type, event.data["code"]) == ("error", "runner_not_found")
        by_name = AskRequest(question="q", runner=p.daemon.identity.name)
        assert (await collect(ask_stream(p.address, by_name)))[-1].type == "result"

        async with connect(
            p.address.websocket_url("/v1/ask"), additional_headers=p.address.headers
        ) as ws:
            await ws.send(json.dumps({"question": "", "bogus": 1}))
            error = AskEvent.model_validate_json(await ws.recv())
        assert (error.type, error.data["code"]) == ("error", "invalid_args")
        assert "question" in error.data["message"]

        [missing] = await collect(follow_stream(p.address, "nope"))
        assert (missing.type, missing.data["code"]) == ("error", "session_not_found")
        async with httpx.AsyncClient() as client:
            gone = await client.get(
                p.address.http_url("/v1/sessions/nope"), headers=p.address.headers
            )
            assert (gone.status_code, gone.json()["error"]["code"]) == (404, "session_not_found")
            nothing = await client.get(p.address.http_url("/v1/nothing"), headers=p.address.headers)
            assert nothing.status_code == 404
            plain = await client.get(p.address.http_url("/v1/ask"), headers=p.address.headers)
            assert plain.status_code == 426
            bad_limit = await client.get(
                p.address.http_url("/v1/sessions"),
                params={"limit": "x"},
                headers=p.address.headers,
            )
            assert (bad_limit.status_code, bad_limit.json()["error"]["code"]) == (
                400,
                "invalid_args",
            )


async def test_run_file_is_private_found_by_ask_and_removed_on_stop(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with embedded_platform(repo, StandInDriver()) as p:
        paths = run_file_paths(repo)
        for path in paths:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        found = find_run_file(repo)
        assert found is not None
        assert (found.url, found.token) == (p.address.url, p.address.token)
        assert locate_platform(root=repo).token == p.address.token

        monkeypatch.chdir(repo)
        console = Console(record=True, width=100)
        await run_ask(AskRequest(question="why?"), console=console)
        output = console.export_text()
        assert "the refund tool adds cents twice" in output
        assert "completed" in output
    assert not any(path.exists() for path in paths)
    with pytest.raises(AskError, match="no running platform"):
        locate_platform(root=repo)
    console = Console(record=True, width=100)
    with pytest.raises(CliError, match="no running platform") as raised:
        await run_ask(AskRequest(question="why?"), console=console)
    assert raised.value.exit_code == EXIT_USAGE


async def test_a_session_outlives_an_asker_who_hangs_up(repo: Path) -> None:
    gate = asyncio.Event()
    async with embedded_platform(repo, StandInDriver(gate)) as p:
        async with connect(
            p.address.websocket_url("/v1/ask"), additional_headers=p.address.headers
        ) as ws:
            await ws.send(AskRequest(question="why?").model_dump_json())
            accepted = AskEvent.model_validate_json(await ws.recv())
        gate.set()
        session_id = accepted.session_id or ""
        events = await collect(follow_stream(p.address, session_id))
        assert events[-1].data["status"] == "completed"
        detail = await read_json(p.address, f"/v1/sessions/{session_id}")
        assert detail["session"]["final_answer"] == "the refund tool adds cents twice"


async def test_the_ask_command_in_another_process(repo: Path, state_dir: Path) -> None:
    async with embedded_platform(repo, StandInDriver()) as p:
        env = {**os.environ, "OPIK_CONNECT_STATE_DIR": str(state_dir), "COLUMNS": "120"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "opik_connect.cli", "ask", "why?", "--trace", "t9",
            "--case", "c1", "--case", "c2", cwd=repo, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        text = out.decode()
        assert proc.returncode == 0, text
        assert "the refund tool adds cents twice" in text and "completed" in text
        [session] = await read_json(p.address, "/v1/sessions")
        assert (session["trace_id"], session["case_ids"]) == ("t9", ["c1", "c2"])

        env["OPIK_CONNECT_TOKEN"] = "wrong"
        env["OPIK_CONNECT_PLATFORM"] = p.address.url
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "opik_connect.cli", "ask", "why?", cwd=repo, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        assert proc.returncode == EXIT_USAGE
        assert "refused the token (401)" in out.decode()


async def test_the_daemon_terminal_asks_its_embedded_platform_in_process(repo: Path) -> None:
    shown = Console(record=True, width=100)
    part = ollie_terminal_part(lambda daemon: None, shown)
    async with embedded_platform(repo, StandInDriver(), parts=[part]) as p:
        events = await collect(daemon_asker(p.daemon)(AskRequest(question="why?")))
        assert [e.type for e in events][-1] == "result"
        assert events[-1].data["status"] == "completed"
        [session] = await read_json(p.address, "/v1/sessions")
        assert session["id"] == events[0].session_id
    assert "No terminal" in shown.export_text()  # pytest's stdin is no tty: no prompt starts
