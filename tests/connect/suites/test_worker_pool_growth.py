"""The pool grows only when waiting for a worker would cost more than starting one."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from opik_connect.connect.suites.agent_workers import WorkerPool
from opik_connect.connect.suites.entrypoint import EntrypointSpec

AGENT = """
import os, time
time.sleep(float(os.environ.get("IMPORT_S", "0")))  # like importing a heavy SDK

def answer(pause: float = 0.0):
    time.sleep(pause)
    return {"output": os.getpid()}
"""
SPEC = EntrypointSpec("agent", "answer", ".", "agent.py")


async def pids(tree: Path, import_s: float, pause: float) -> set[int]:
    (tree / "agent.py").write_text(AGENT)
    env = {"IMPORT_S": str(import_s), "PATH": "/usr/bin:/bin"}
    async with WorkerPool(tree, SPEC, 4, python=sys.executable, env=env) as pool:
        await pool.warm()
        outcomes = await asyncio.gather(*(pool.call({"pause": pause}) for _ in range(8)))
    assert all(o.ok for o in outcomes), outcomes
    return {o.result["output"] for o in outcomes if o.result}


async def test_a_fast_agent_with_a_slow_start_keeps_one_worker(tmp_path: Path) -> None:
    assert len(await pids(tmp_path, import_s=1.0, pause=0.0)) == 1


async def test_a_slow_agent_with_a_fast_start_gets_every_worker(tmp_path: Path) -> None:
    assert len(await pids(tmp_path, import_s=0.0, pause=0.5)) == 4
