"""The link state the daemon's terminal shows, as a user sees it.

The link state the daemon's terminal shows, as a user sees it: `opik-connect --platform URL`
in a real subprocess, against a pre-paired platform this test stops and starts on the same port.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pexpect
import pytest
from link_testkit import CLI, pre_pair_project, read_until, start_cli
from platform_api_testkit import make_git_repo

from opik_connect.agent.platform.server import Platform

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def repo(tmp_path: Path, state_dir: Path) -> Path:
    return make_git_repo(tmp_path / "proj", {"app.py": "print('hi')\n"}).resolve()


async def test_terminal_shows_connected_reconnecting_and_connected_again(repo: Path) -> None:
    platform = Platform()
    await platform.start()
    runner_id = pre_pair_project(platform, repo)
    env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    env.pop("OPIK_CONNECT_PLATFORM", None)
    proc = await start_cli(["--platform", platform.url], repo, env)
    seen: list[str] = []
    try:
        up = (await read_until(proc, "● connected", seen, within=15)).string
        assert up.strip() == f"● connected ({platform.url})"
        assert [r.runner_id for r in platform.runners() if r.connected] == [runner_id]

        await platform.stop()
        shown_up = len(seen)
        await read_until(proc, "● reconnecting", seen, within=15)
        assert "connected" not in "".join(seen[shown_up:-1])

        await platform.start()  # same port: stop() keeps it, and the pairing
        again = (await read_until(proc, "● connected", seen, within=15)).string
        assert again.strip() == up.strip()
        await platform.wait_runner(runner_id)
    finally:
        if proc.returncode is None:
            proc.terminate()
            async with asyncio.timeout(10):
                await proc.wait()
        await platform.stop()
    assert proc.returncode == 0, "".join(seen)


def test_on_a_terminal_the_banner_and_link_state_come_before_the_ollie_prompt(repo: Path) -> None:
    """The `ollie>` prompt only comes up once the banner is out and the link is connected."""

    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    env.pop("OPIK_CONNECT_PLATFORM", None)
    env.pop("ANTHROPIC_API_KEY", None)
    child = pexpect.spawn(
        CLI, cwd=str(repo), env=env, timeout=15, encoding="utf-8", dimensions=(40, 120)
    )
    try:
        child.expect("ollie> ready")
        before = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before)
        banner = before.index("serving project proj")
        connected = before.index("connected (ws://127.0.0.1:")
        assert banner < connected
        assert "ollie>" not in before
        child.sendline("why?")
        child.expect("no_api_key")
    finally:
        child.kill(9)
        child.close()
