"""The shipped commands together: the daemon in a project and `ask` in another process.

The shipped commands together: `opik-connect` (daemon + embedded platform) in a project, and
`opik-connect ask` in another process, which finds it through the run file. Ollie answers through
the scripted Messages API; without a key it refuses with the instructions.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from platform_api_testkit import make_git_repo

from fixtures.scripted_messages_api import ScriptedMessagesAPI, text_turn
from opik_connect.agent.platform.run_file import find_run_file
from opik_connect.connect.terminal.ask_client import locate_platform, read_json

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "OPIK_CONNECT_", "OPIK_URL"))
    }
    return {**clean, "OPIK_CONNECT_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "120"}


async def cli(*args: str, cwd: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opik_connect.cli",
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


@asynccontextmanager
async def running_daemon(repo: Path, env: dict[str, str]) -> AsyncIterator[None]:
    daemon = await cli(cwd=repo, env=env)
    try:
        for _ in range(300):
            if await asyncio.to_thread(find_run_file, repo) is not None:
                break
            assert daemon.returncode is None, (await daemon.stdout.read()).decode()  # type: ignore[union-attr]
            await asyncio.sleep(0.05)
        yield
    finally:
        if daemon.returncode is None:
            daemon.send_signal(signal.SIGTERM)
        await asyncio.wait_for(daemon.communicate(), 20)


async def ask(repo: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await cli("ask", *args, cwd=repo, env=env)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_ask_reaches_the_daemons_embedded_ollie(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", env["OPIK_CONNECT_STATE_DIR"])
    repo = make_git_repo(tmp_path / "project")
    answer = "No trace was given, so there is nothing to fix yet."
    with ScriptedMessagesAPI([text_turn(answer, match="what broke")]) as api:
        daemon_env = {**env, "ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": api.url}
        async with running_daemon(repo, daemon_env):
            code, out = await ask(repo, env, "what broke?")
            assert code == 0, out
            assert answer in out and "completed" in out
            address = locate_platform(root=repo)
            [session] = await read_json(address, "/v1/sessions")
            assert (session["question"], session["status"]) == ("what broke?", "completed")
            assert session["final_answer"] == answer
        assert len(api.requests) == 1


async def test_without_a_key_ask_says_how_to_set_one(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", env["OPIK_CONNECT_STATE_DIR"])
    repo = make_git_repo(tmp_path / "project")
    async with running_daemon(repo, env):
        code, out = await ask(repo, env, "what broke?")
        assert code == 1, out
        assert "no_api_key" in out and "export ANTHROPIC_API_KEY=" in out
        assert await read_json(locate_platform(root=repo), "/v1/sessions") == []
