"""The daemon's banner says how Ollie is set up, never the key.

The daemon's banner says how Ollie is set up (model, endpoint, key set or not, never the key),
so a missing key shows at start and not at the first `ask`.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from link_testkit import read_until, start_cli
from platform_api_testkit import make_git_repo

from opik_connect.config import ProjectConfig
from opik_connect.connect.daemon_cli import ollie_setup

pytestmark = pytest.mark.timeout(40)
SECRET = "sk-ant-banner-secret-0123456789"
PYPROJECT = '[tool.opik-connect]\nmodel = "claude-test-1"\n'


async def banner(repo: Path, **extra: str) -> str:
    """The daemon's output up to the link being up, with ANTHROPIC_* only as given."""
    env = {**os.environ, "COLUMNS": "200", **extra}
    for name in ("OPIK_CONNECT_PLATFORM", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        if name not in extra:
            env.pop(name, None)
    proc = await start_cli([], repo, env)
    seen: list[str] = []
    try:
        await read_until(proc, r"connected \(ws://127\.0\.0\.1:\d+\)", seen)
    finally:
        proc.terminate()
        async with asyncio.timeout(10):
            await proc.wait()
    return "".join(seen)


@pytest.fixture
def repo(tmp_path: Path, state_dir: Path) -> Path:
    files = {"app.py": "print('hi')\n", "pyproject.toml": PYPROJECT}
    return make_git_repo(tmp_path / "proj", files).resolve()


async def test_banner_names_model_endpoint_and_that_a_key_is_set(repo: Path) -> None:
    text = await banner(repo, ANTHROPIC_API_KEY=SECRET, ANTHROPIC_BASE_URL="http://127.0.0.1:9/v1")
    assert (
        "  ollie     model claude-test-1 at http://127.0.0.1:9/v1 (ANTHROPIC_BASE_URL), "
        "key set (ANTHROPIC_API_KEY)"
    ) in text
    assert SECRET not in text and SECRET[-8:] not in text


async def test_banner_says_the_default_endpoint_and_a_missing_key(repo: Path) -> None:
    text = await banner(repo)
    assert (
        "  ollie     model claude-test-1 at https://api.anthropic.com (default), "
        "NO key: set ANTHROPIC_API_KEY and restart to ask Ollie"
    ) in text


def test_a_blank_key_is_no_key_and_a_remote_platform_runs_its_own_ollie() -> None:
    config = ProjectConfig()
    blank = ollie_setup(config, {"ANTHROPIC_API_KEY": "  "}, embedded=True)
    assert blank.startswith(f"model {config.model} at https://api.anthropic.com (default), NO key")
    remote = ollie_setup(config, {"ANTHROPIC_API_KEY": SECRET}, embedded=False)
    assert remote == "runs on the platform, with the platform's model and key"
