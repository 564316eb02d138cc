"""The daemon and platform commands as a user runs them: real subprocesses, real git repos.

Error paths that never start a server run in process (typer's CliRunner): the CLI's import alone
costs seconds per subprocess on this machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from link_testkit import CLI, read_until, start_cli
from platform_api_testkit import make_git_repo
from typer.testing import CliRunner

from opik_connect.cli import app

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    out = {**os.environ, "OPIK_CONNECT_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    out.pop(PLATFORM_ENV, None)
    return out


PLATFORM_ENV = "OPIK_CONNECT_PLATFORM"


@pytest.fixture
def repo(tmp_path) -> Path:
    return make_git_repo(tmp_path / "proj", {"app.py": "print('hi')\n", "notes.md": "notes\n"})


def invoke(args: list[str], cwd: Path, env: dict[str, str], monkeypatch):
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", env["OPIK_CONNECT_STATE_DIR"])
    monkeypatch.delenv(PLATFORM_ENV, raising=False)
    return CliRunner().invoke(app, args)


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30
    )


def test_refuses_outside_a_git_repo(tmp_path, env):
    plain = tmp_path / "plain"
    plain.mkdir()
    result = run([], plain, env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not inside a git repository" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_debug_raises_instead_of_one_line(tmp_path, env, monkeypatch):
    result = invoke(["--debug"], tmp_path, env, monkeypatch)
    assert result.exit_code != 0 and type(result.exception).__name__ == "NotAGitRepository"


def test_refuses_plain_ws_to_a_remote_host(repo, env, monkeypatch):
    result = invoke(["--platform", "ws://example.com:9"], repo, env, monkeypatch)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: refusing ws:// to non-loopback host 'example.com'; use wss://"
    ]
    monkeypatch.setenv(PLATFORM_ENV, "http://127.0.0.1:9")
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 2 and "must be ws:// or wss://" in result.stderr


def test_stop_without_a_daemon(repo, env, monkeypatch):
    result = invoke(["stop"], repo, env, monkeypatch)
    assert result.exit_code == 2
    assert result.stderr == f"error: no daemon is running for {repo.resolve()}\n"


def test_stop_ignores_a_stale_pid_file_naming_a_live_unrelated_process(repo, env, monkeypatch):
    """After a kill -9 the pid file stays; its pid may since belong to anything else."""
    from opik_connect.connect.daemon_cli import pid_file

    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", env["OPIK_CONNECT_STATE_DIR"])
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        stale = pid_file(repo.resolve())
        stale.write_text(str(bystander.pid))
        result = invoke(["stop"], repo, env, monkeypatch)
        assert result.exit_code == 2
        assert result.stderr == f"error: no daemon is running for {repo.resolve()}\n"
        assert bystander.poll() is None, "stop signalled an unrelated process"
        started = invoke(["--platform", "ws://example.com:9"], repo, env, monkeypatch)
        assert "already serves" not in started.stderr, "a stale pid file blocks no new daemon"
    finally:
        bystander.kill()
        bystander.wait()


def test_protocol_schema_is_json(repo, env, monkeypatch):
    result = invoke(["protocol", "schema"], repo, env, monkeypatch)
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "ReadFileArgs" in schema["$defs"] and schema["close_codes"]["auth_failed"] == 4401


async def test_daemon_starts_shows_connection_and_stops(repo, env, monkeypatch):
    proc = await start_cli([], repo, env)
    seen: list[str] = []
    try:
        await read_until(proc, r"connected \(ws://127\.0\.0\.1:\d+\)", seen)
        text = "".join(seen)
        assert "serving project proj" in text
        assert f"root      {repo.resolve()}" in text
        assert "files     2 visible" in text
        assert "(embedded)" in text
        agent = text.split("agent     ", 1)[1].splitlines()[0]
        assert "python" in agent and "opik" in agent, "the banner names the agent's interpreter"
        pid_files = list((Path(env["OPIK_CONNECT_STATE_DIR"]) / "projects").glob("*/daemon.pid"))
        assert len(pid_files) == 1
        assert stat.S_IMODE(pid_files[0].stat().st_mode) == 0o600
        assert pid_files[0].read_text() == str(proc.pid)
        again = invoke([], repo, env, monkeypatch)
        assert again.exit_code == 2 and "already serves" in again.stderr
        stopped = await asyncio.to_thread(run, ["stop"], repo, env)
        assert stopped.returncode == 0, stopped.stderr
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
        assert not pid_files[0].exists()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_remote_platform_pairing_confirmed_with_the_operator_command(repo, env):
    platform = await start_cli(["platform", "--port", "0"], repo, env)
    daemon = None
    seen: list[str] = []
    try:
        url = (await read_until(platform, r"ws://127\.0\.0\.1:\d+", seen)).group(0).strip()
        run_file = Path(env["OPIK_CONNECT_STATE_DIR"]) / "platform-server.json"
        assert stat.S_IMODE(run_file.stat().st_mode) == 0o600
        daemon = await start_cli(["--platform", url], repo, env)
        code = (await read_until(daemon, r"code [A-Z0-9]{4}-[A-Z0-9]{4}", seen)).group(0).split()[1]
        confirmed = await asyncio.to_thread(run, ["platform", "pair", code], repo, env)
        assert confirmed.returncode == 0, confirmed.stderr
        assert "paired runner" in confirmed.stdout
        await read_until(daemon, r"connected \(ws://", seen)
        await read_until(platform, r"runner .* connected \(project proj, 2 files\)", seen)
    finally:
        for proc in (daemon, platform):
            if proc is not None and proc.returncode is None:
                proc.terminate()
                async with asyncio.timeout(10):
                    await proc.wait()
    assert platform.returncode == 0
