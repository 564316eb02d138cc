"""The trace sink with the real `opik` SDK: an `@opik.track` agent in a subprocess logs to an
embedded platform through `eval "$(opik-connect traces env)"`, and the trace comes back through
`traces list/show` and the trace store Ollie reads. Bad writes get Opik's 4xx and lose nothing."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import sys
from pathlib import Path

import httpx
import pytest
from platform_api_testkit import EmbeddedPlatform, embedded_platform, make_git_repo

from opik_connect.agent.traces import sink_http
from opik_connect.agent.traces.sink_http import TraceSinkServer
from opik_connect.agent.traces.sink_store_sqlite import SqliteSinkStore
from opik_connect.agent.traces.traces_cli import sink_address
from opik_connect.connect.terminal.ask_client import ask_stream
from opik_connect.protocol import AskRequest

pytest.importorskip("opik")
pytestmark = pytest.mark.timeout(120)

AGENT = Path(__file__).with_name("sdk_agent.py")


@pytest.fixture(autouse=True)
def state_dir(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("OPIK_CONNECT_PLATFORM", raising=False)
    monkeypatch.delenv("OPIK_CONNECT_TOKEN", raising=False)
    return state_dir


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_git_repo(tmp_path / "project")


def _clean_env(home: Path) -> dict[str, str]:
    """No ambient Opik settings: only what `traces env` prints may point the SDK anywhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPIK_") or "CONNECT" in k}
    env["HOME"] = str(home)
    return env


async def _cli(repo: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "opik_connect.cli", *args,
        cwd=repo, env=_clean_env(repo.parent), stdout=-1, stderr=-1,
    )  # fmt: skip
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def _run_agent(repo: Path, question: str) -> str:
    """The user's flow: eval the env lines, then start the agent."""
    script = (
        f'eval "$({sys.executable} -m opik_connect.cli traces env)" && '
        f'exec {sys.executable} {AGENT} "$1"'
    )
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", script, "agent", question,
        cwd=repo, env=_clean_env(repo.parent), stdout=-1, stderr=-1,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_sdk_agent_logs_to_the_platform_and_reads_back(repo: Path) -> None:
    async with embedded_platform(repo) as platform:
        code, out, err = await _cli(repo, "traces", "env")
        assert code == 0, err
        assert f"export OPIK_API_KEY={platform.address.token}" in out
        assert "export OPIK_URL_OVERRIDE=http://127.0.0.1:" in out

        assert "answer(where is my refund" in await _run_agent(repo, "where is my refund")
        await _run_agent(repo, "how long is shipping")

        code, out, err = await _cli(repo, "traces", "list")
        assert code == 0, err
        lines = out.splitlines()
        assert "shipping" in lines[0] and "refund" in lines[1]  # newest first
        assert "2 of 2 trace(s)" in out

        code, out, _ = await _cli(repo, "traces", "list", "--errors", "--score-below", "0.5")
        assert "1 of 1" in out and "refund" in out and "scores correct=0" in out
        trace_id = out.split()[2]
        code, out, _ = await _cli(repo, "traces", "list", "--text", "shipping", "--tag", "support")
        assert "1 of 1" in out and "shipping" in out
        code, out, _ = await _cli(repo, "traces", "list", "--name", "nope")
        assert "0 of 0" in out

        code, out, err = await _cli(repo, "traces", "show", trace_id)
        assert code == 0, err
        assert "lookup_policy [tool]" in out and "call_model [llm]" in out
        assert "KeyError: 'refund_window'" in out
        assert "correct=0" in out and "said no policy" in out

        record = await platform.services.traces.get(trace_id)
        assert [s.name for s in record.spans] == ["support_agent", "lookup_policy", "call_model"]
        assert record.trace.metadata == {"release": "r7"}


async def test_the_sdk_client_updates_and_scores_what_it_logged(repo: Path) -> None:
    async with embedded_platform(repo) as platform:
        trace_id = (await _run_agent(repo, "--client")).strip()
        record = await platform.services.traces.get(trace_id)
        assert record.trace.output == {"a": "patched"}
        assert record.trace.input == {"q": "patched?"}
        (span,) = record.spans
        assert span.metadata == {"checked": True} and span.output == {"y": 2}
        assert [(s.name, s.value) for s in span.feedback_scores or []] == [("useful", 0.75)]


async def test_unknown_trace_id_says_where_it_looked(repo: Path) -> None:
    async with embedded_platform(repo):
        code, _, err = await _cli(repo, "traces", "show", "0000-nope")
        assert code == 1 and "not found" in err


async def _sink(platform: EmbeddedPlatform) -> str:
    return await sink_address(platform.address)


def _trace(trace_id: str, **extra: object) -> dict[str, object]:
    return {"id": trace_id, "name": "t", "start_time": "2026-01-01T00:00:00Z", **extra}


async def test_writes_need_the_token_and_bad_batches_lose_nothing(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with embedded_platform(repo) as platform:
        sink = await _sink(platform)
        good = {"authorization": platform.address.token}
        async with httpx.AsyncClient(base_url=sink, timeout=10) as client:
            batch = {"traces": [_trace("a1", output={"v": 1})]}
            response = await client.post("/v1/private/traces/batch", json=batch)
            assert response.status_code == 401
            assert response.json() == {
                "code": 401,
                "message": "missing or wrong API key",
                "errors": ["missing or wrong API key"],
            }
            wrong = {"authorization": "nope"}
            assert (
                await client.post("/v1/private/traces/batch", json=batch, headers=wrong)
            ).status_code == 401
            response = await client.post("/v1/private/traces/batch", json=batch, headers=good)
            assert response.status_code == 204

            # A batch with one bad item is refused whole: the good item in it is not stored.
            mixed = {"traces": [_trace("a2"), {"id": "a1", "name": "t"}]}
            response = await client.post("/v1/private/traces/batch", json=mixed, headers=good)
            assert response.status_code == 422
            assert "traces.1.start_time" in response.json()["message"]

            response = await client.post(
                "/v1/private/traces/batch", content=b'{"traces": [', headers=good
            )
            assert response.status_code == 400 and response.json()["code"] == 400
            response = await client.post(
                "/v1/private/traces/batch", json={"traces": []}, headers=good
            )
            assert response.status_code == 422

            monkeypatch.setattr(sink_http, "MAX_BODY_BYTES", 1000)
            big = {"traces": [_trace("a3", input={"x": "y" * 5000})]}
            response = await client.post("/v1/private/traces/batch", json=big, headers=good)
            assert response.status_code == 413
            bomb = gzip.compress(json.dumps(big).encode())
            assert len(bomb) < 1000
            response = await client.post(
                "/v1/private/traces/batch",
                content=bomb,
                headers={**good, "content-encoding": "gzip", "content-type": "application/json"},
            )
            assert response.status_code == 413
            monkeypatch.undo()

        # A body cut off mid-way (the client died) stores nothing and the server keeps serving.
        host, port = sink.removeprefix("http://").removesuffix("/api").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /api/v1/private/traces/batch HTTP/1.1\r\nhost: x\r\n"
            b"authorization: " + platform.address.token.encode() + b"\r\n"
            b"content-length: 500\r\n\r\n" + json.dumps({"traces": [_trace("a4")]}).encode()[:40]
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()

        # Without the token, the answer comes before any of a (huge) body is sent.
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /api/v1/private/traces/batch HTTP/1.1\r\nhost: x\r\n"
            b"content-length: 30000000\r\n\r\n"
        )
        assert (await reader.readline()).startswith(b"HTTP/1.1 401")
        writer.close()
        await writer.wait_closed()

        # A client that waits for 100 Continue gets it, then its batch is stored.
        body = json.dumps({"traces": [_trace("a5")]}).encode()
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /api/v1/private/traces/batch HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n"
            b"authorization: " + platform.address.token.encode() + b"\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        assert (await reader.readline()).startswith(b"HTTP/1.1 100")
        await reader.readline()
        writer.write(body)
        assert (await reader.readline()).startswith(b"HTTP/1.1 204")
        writer.close()
        await writer.wait_closed()

        async with httpx.AsyncClient(base_url=sink, timeout=10) as client:
            page = (await client.get("/v1/private/traces", headers=good)).json()
            assert sorted(item["id"] for item in page["content"]) == ["a1", "a5"]
            trace = (await client.get("/v1/private/traces/a1", headers=good)).json()
            assert trace["output"] == {"v": 1}
            assert (await client.get("/v1/private/traces/zz", headers=good)).status_code == 404
            response = await client.delete("/v1/private/traces/a1", headers=good)
            assert response.status_code == 405


async def test_asking_about_an_unknown_trace_says_where_traces_are_looked_for(repo: Path) -> None:
    async with embedded_platform(repo, None) as platform:
        request = AskRequest(question="why?", trace_id="tr-missing")
        events = [event async for event in ask_stream(platform.address, request)]
        assert [event.type for event in events] == ["accepted", "result"]
        result = events[-1].data
        assert result["status"] == "trace_not_found"
        assert "trace 'tr-missing' not found" in result["error"]
        assert "the platform's trace sink" in result["error"]


async def test_a_store_failure_is_a_500_in_opik_shape_and_the_server_lives_on(
    tmp_path: Path,
) -> None:
    store = await SqliteSinkStore.open(tmp_path / "sink.sqlite3")
    async with TraceSinkServer(store, "tok") as server:
        await store.close()
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            batch = {"traces": [_trace("b1")]}
            response = await client.post(
                "/v1/private/traces/batch", json=batch, headers={"authorization": "tok"}
            )
            assert response.status_code == 500 and response.json()["code"] == 500
            assert (await client.get("/is-alive/ping")).json()["healthy"] is True
