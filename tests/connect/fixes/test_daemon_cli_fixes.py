"""`opik-connect` without a terminal: a proposal waits, `approve` in another process decides.

`opik-connect` as a user runs it without a terminal: a proposal from the platform shows in its
output and waits; `opik-connect approve ID` in another process decides it; the daemon reruns the
suite on the fix branch, tells the platform and shows the decision. Real subprocesses.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from fix_flow_testkit import make_refund_project, refund_fix
from link_testkit import CLI, pre_pair_project, read_until, start_cli

from opik_connect.agent.platform.server import Platform

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    out = {**os.environ, "COLUMNS": "200"}
    for name in ("OPIK_CONNECT_PLATFORM", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        out.pop(name, None)
    return out


async def test_the_daemon_shows_a_proposal_and_the_decision_made_elsewhere(
    tmp_path: Path, env: dict[str, str]
) -> None:
    repo = make_refund_project(tmp_path / "project").resolve()
    async with Platform() as platform:
        runner_id = pre_pair_project(platform, repo)
        proc = await start_cli(
            ["--platform", platform.url], repo, env, stdin=asyncio.subprocess.DEVNULL
        )
        seen: list[str] = []
        try:
            await read_until(proc, "No terminal", seen, within=30)
            async with asyncio.timeout(20):
                runner = await platform.wait_runner(runner_id)
            pid = (await runner.propose_change(refund_fix())).proposal_id
            await read_until(proc, f"proposal {pid}: Answer the right refund", seen, within=30)

            approved = await asyncio.to_thread(
                subprocess.run,
                [CLI, "approve", pid],
                cwd=repo,
                env=env,
                capture_output=True,
                text=True,
                timeout=40,
            )
            assert approved.returncode == 0, approved.stderr
            async with asyncio.timeout(30):
                decided = await runner.wait_decision(pid)
            assert decided.decision == "approved" and decided.branch
            assert [run.status for run in decided.suite_results] == ["passed"]
            await read_until(
                proc, rf"proposal {pid} approved on {re.escape(decided.branch)}", seen, within=30
            )
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                await proc.wait()
    assert proc.returncode == 0, "".join(seen)
