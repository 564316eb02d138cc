"""`opik-connect platform --sink-port` (or `[tool.opik-connect] sink-port`) puts the trace sink on
a port a team's proxy can forward; without it the sink takes a free port, as before. With
`--sink-public-port`, daemons are granted the proxy's port instead. A real platform subprocess;
the SDK's write route answers on the chosen port with the usual token."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from platform_api_testkit import make_git_repo
from platform_process_kit import WITHIN_S, PlatformProcess, paired_link

from opik_connect.config import ConfigError, load_project_config
from opik_connect.protocol import TraceSinkAddress, sink_base_url

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = {**os.environ, "OPIK_CONNECT_STATE_DIR": str(tmp_path / "state")}
    for name in ("OPIK_CONNECT_PLATFORM", "OPIK_URL_OVERRIDE", "OPIK_CONNECT_TOKEN"):
        out.pop(name, None)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def sink_port_of(platform: PlatformProcess) -> int:
    """The port the platform names for its sink, after checking a write lands there."""
    response = await platform.get("/v1/traces/sink", token=platform.token)
    url = response.json()["url"]
    trace = {"id": "t1", "name": "n", "start_time": "2026-01-01T00:00:00Z"}
    async with httpx.AsyncClient(base_url=url, timeout=WITHIN_S) as client:
        written = await client.post(
            "/v1/private/traces/batch",
            json={"traces": [trace]},
            headers={"authorization": platform.token},
        )
        assert written.status_code == 204, written.text
        read = await client.get("/v1/private/traces/t1", headers={"authorization": platform.token})
        assert read.json()["id"] == "t1"
    return int(url.removesuffix("/api").rsplit(":", 1)[1])


async def test_sink_port_option_puts_the_trace_sink_on_that_port(
    tmp_path: Path, env: dict[str, str]
) -> None:
    port = free_port()
    platform = await PlatformProcess.start(env, tmp_path, 0, "--sink-port", str(port))
    try:
        assert await sink_port_of(platform) == port
    finally:
        assert await platform.terminate() == 0


async def test_daemons_are_granted_the_public_sink_port_a_proxy_listens_on(
    tmp_path: Path, env: dict[str, str]
) -> None:
    port = free_port()
    platform = await PlatformProcess.start(
        env, tmp_path, 0, "--sink-port", str(port), "--sink-public-port", "9443"
    )
    try:
        assert await sink_port_of(platform) == port
        async with paired_link(platform, {}, tmp_path / "pairings.json") as link:
            grant = link.trace_sink()
            assert grant is not None and grant.port == 9443
    finally:
        assert await platform.terminate() == 0


async def test_sink_port_comes_from_the_project_config_and_the_option_wins(
    tmp_path: Path, env: dict[str, str]
) -> None:
    configured, chosen = free_port(), free_port()
    repo = make_git_repo(tmp_path / "proj")
    (repo / "pyproject.toml").write_text(f"[tool.opik-connect]\nsink-port = {configured}\n")
    platform = await PlatformProcess.start(env, repo)
    try:
        assert await sink_port_of(platform) == configured
    finally:
        assert await platform.terminate() == 0
    platform = await PlatformProcess.start(env, repo, 0, "--sink-port", str(chosen))
    try:
        assert await sink_port_of(platform) == chosen
    finally:
        assert await platform.terminate() == 0


async def test_without_a_sink_port_the_sink_takes_a_free_one(
    tmp_path: Path, env: dict[str, str]
) -> None:
    platform = await PlatformProcess.start(env, tmp_path)
    try:
        assert await sink_port_of(platform) not in (0, platform.port)
    finally:
        assert await platform.terminate() == 0


def test_a_taken_sink_port_is_a_usage_error_naming_the_sink(
    tmp_path: Path, env: dict[str, str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "opik_connect.cli", "platform", "--port", "0"]
        done = subprocess.run(
            [*argv, "--sink-port", str(port), "--log-format", "json"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=WITHIN_S,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"trace sink: cannot listen on 127.0.0.1:{port}" in done.stderr


@pytest.mark.parametrize("key", ["sink-port", "sink-public-port"])
def test_a_sink_port_out_of_range_in_the_config_is_refused(tmp_path: Path, key: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.opik-connect]\n{key} = 70000\n")
    with pytest.raises(ConfigError, match=key):
        load_project_config(tmp_path)


async def test_traces_env_names_the_public_port_on_the_host_the_cli_reached(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Behind a proxy, `traces env` points the SDK where daemons log: the platform's host as the
    CLI reached it, on the public port (before, it named the replica's own sink address)."""
    platform = await PlatformProcess.start(
        env, tmp_path, 0, "--sink-port", str(free_port()), "--sink-public-port", "9443"
    )
    try:
        url = platform.url.replace("127.0.0.1", "localhost")
        cli = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "opik_connect.cli", "traces", "env"),
            *("--platform", url, "--token", platform.token),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(cli.communicate(), WITHIN_S)
        assert cli.returncode == 0, err.decode()
        assert "export OPIK_URL_OVERRIDE=http://localhost:9443/api" in out.decode().splitlines()
    finally:
        assert await platform.terminate() == 0


@pytest.mark.parametrize(
    ("platform_url", "tls", "expected"),
    [
        ("ws://127.0.0.1:8765", False, "http://127.0.0.1:9443/api"),
        ("wss://platform.example.com", False, "https://platform.example.com:9443/api"),
        ("https://platform.example.com", False, "https://platform.example.com:9443/api"),
        ("ws://[::1]:8765", True, "https://[::1]:9443/api"),
        ("ws:///nohost", False, None),
    ],
)
def test_sink_base_url_takes_the_host_and_tls_from_the_platform_url(
    platform_url: str, tls: bool, expected: str | None
) -> None:
    assert sink_base_url(platform_url, 9443, tls) == expected


def test_a_sink_address_is_built_on_the_platform_host_or_taken_as_named_without_a_port() -> None:
    """The CLI's rule is the daemon's: with a port named, the URL is built on the host the
    platform was reached at, and without a host there is none (not the sink's own address,
    which names its bind host and inner port). A platform that names no port predates it: its
    sink's own URL is what its clients used."""
    own = "http://0.0.0.0:8766/api"
    named = TraceSinkAddress(url=own, port=9443, tls=False)
    assert named.base_url("wss://platform.example") == "https://platform.example:9443/api"
    assert named.base_url("ws:///nohost") is None
    assert TraceSinkAddress(url=own).base_url("wss://platform.example") == own
    assert TraceSinkAddress(url=None, port=9443).base_url("wss://platform.example") is None
