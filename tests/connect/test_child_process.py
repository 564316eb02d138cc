"""child_process and spawn_child under cancellation: the event loop closing while they start a
child (a daemon stopped while a search starts ripgrep, a suite run stopped while it starts an
agent worker), or their caller cancelled then, ends and leaves no child.

Each scenario runs in its own Python, under asyncio.run, so a hang fails the test at a bound
instead of stalling the suite. The script sweeps the moment of the teardown (or cancellation)
across the spawn: 0, 1, 2... turns of the loop after the spawn began, up to a turn where the
child was already running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sandbox_repo import make_repo

from opik_connect.connect.child_process import PIPE, child_process, spawn_child
from opik_connect.connect.sandbox.ripgrep import find_ripgrep

HANG_BOUND_S = 10.0
"""A teardown that has not ended by then hangs (a passing run takes a fraction of a second)."""

MAX_TURNS = 200

SWEEP = """
import asyncio, contextlib, json, os, sys
from asyncio.base_events import BaseEventLoop

CANCEL = sys.argv[1] == "cancel"
PROGRAM = sys.argv[2]
real_exec = BaseEventLoop.subprocess_exec
spawning = None
running = []

async def traced_exec(self, protocol_factory, program, *args, **kwargs):
    if os.path.basename(program) == PROGRAM and spawning is not None:
        spawning.set()
    return await real_exec(self, protocol_factory, program, *args, **kwargs)

BaseEventLoop.subprocess_exec = traced_exec
%(body)s

async def main(turns):
    global spawning
    spawning = asyncio.Event()
    background = asyncio.ensure_future(start())  # never awaited: as the daemon's refresh
    await spawning.wait()
    for _ in range(turns):
        await asyncio.sleep(0)
    if CANCEL:
        background.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await background
    elif background.done():
        background.result()

for turns in range(%(max_turns)d):
    running.clear()
    asyncio.run(main(turns))
    print("running" if running else "spawning", flush=True)
    if running:
        break
try:
    left = os.waitpid(-1, os.WNOHANG)
except ChildProcessError:
    left = None
print(json.dumps(left), flush=True)
"""


def _sweep(
    body: str, how: str, program: str, *args: str, env: dict[str, str] | None = None
) -> list[str]:
    """Runs SWEEP with `body` (defining `async def start()`, which starts `program` and appends
    to `running` once it runs): the loop closes (how="teardown"), or start() is cancelled
    (how="cancel"), 0, 1, 2... turns after the spawn began, until the child was running by
    then. Each turn's outcome: "spawning" (`program` was being started) or "running"."""
    script = SWEEP % {"body": body, "max_turns": MAX_TURNS}
    with subprocess.Popen(
        [sys.executable, "-c", script, how, program, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    ) as child:
        try:
            out, err = child.communicate(timeout=HANG_BOUND_S)
        except subprocess.TimeoutExpired:
            child.kill()
            out, err = child.communicate()
            raise AssertionError(f"the loop never closed after turn {len(out.split())}") from None
    assert child.returncode == 0, err
    *outcomes, unreaped = out.split("\n")[:-1]
    assert json.loads(unreaped) is None, "a child was left unreaped"
    assert outcomes[-1] == "running", outcomes
    return outcomes


def _survivors(program: str, marker: str) -> list[int]:
    """Live processes running `program` whose command line or working directory has `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if os.path.basename(argv[0]).decode() == program and (
            marker.encode() in argv or marker in cwd
        ):
            found.append(int(entry.name))
    return found


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


async def test_a_child_is_fed_and_read_through_full_pipes_and_leaks_no_descriptor() -> None:
    data = bytes(range(256)) * (1 << 14)  # 4 MiB: more than a pipe holds, both ways
    before = sorted(os.listdir("/proc/self/fd"))
    async with child_process("cat", cwd=Path("/"), stdin_pipe=True) as proc:
        out, err = await proc.communicate(data)
    assert (out == data, err, proc.returncode) == (True, b"", 0)
    with pytest.raises(FileNotFoundError):
        async with child_process("/nonexistent/program", cwd=Path("/")):
            pass
    assert sorted(os.listdir("/proc/self/fd")) == before


async def test_a_child_with_stdin_piped_and_stdout_inherited_gets_its_input(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """As an editor or pager runs: fed through a pipe, writing to the terminal it inherits."""
    child = await spawn_child("cat", stdin=PIPE)
    try:
        out, err = await child.communicate(b"the diff to page\n")
    finally:
        child.close()
    assert (child.stdout, child.stderr, out, err, child.returncode) == (None, None, b"", b"", 0)
    assert capfd.readouterr().out == "the diff to page\n"


SLEEP = """
from pathlib import Path
from opik_connect.connect.child_process import PIPE, child_process, spawn_child

async def start():
    async with child_process("sleep", sys.argv[3], cwd=Path("/")) as proc:
        running.append(proc.pid)
        await proc.wait()
"""


@pytest.mark.parametrize("how", ["teardown", "cancel"])
def test_the_loop_closing_during_a_spawn_ends_and_leaves_no_child(how: str) -> None:
    token = f"3600.{uuid.uuid4().int % 10**9:09d}"  # a sleep no other process runs
    try:
        outcomes = _sweep(SLEEP, how, "sleep", token)
        assert "spawning" in outcomes, outcomes  # the teardown fell inside the spawn
        assert _survivors("sleep", token) == []
    finally:
        _kill(_survivors("sleep", token))


SEARCH = """
import contextlib
from pathlib import Path
from opik_connect.config import ProjectConfig
from opik_connect.connect.sandbox import ripgrep
from opik_connect.connect.sandbox.read_commands import Sandbox
from opik_connect.protocol import SearchFilesArgs

real_child_process = ripgrep.child_process

@contextlib.asynccontextmanager
async def traced_child_process(*cmd, **kwargs):
    async with real_child_process(*cmd, **kwargs) as proc:
        running.append(proc.pid)
        yield proc

ripgrep.child_process = traced_child_process

async def start():
    sandbox = await Sandbox.open(Path(sys.argv[3]), ProjectConfig())
    await sandbox.index.files()
    sandbox.index.watched = True
    await sandbox.search_files(SearchFilesArgs(pattern="needle"))
"""


def test_a_stop_while_the_secret_index_starts_ripgrep_ends_and_leaves_no_rg(
    tmp_path: Path,
) -> None:
    """The daemon's path: asyncio.run ends (a stop) while a search's index refresh starts rg."""
    rg = find_ripgrep()
    assert rg is not None
    repo = make_repo(tmp_path / "proj")
    env = {"OPIK_CONNECT_STATE_DIR": str(tmp_path / "state")}
    try:
        outcomes = _sweep(SEARCH, "teardown", os.path.basename(rg), str(repo), env=env)
        assert "spawning" in outcomes, outcomes
        assert _survivors(os.path.basename(rg), str(repo)) == []
    finally:
        _kill(_survivors(os.path.basename(rg), str(repo)))


WORKER = """
from pathlib import Path
from opik_connect.connect.suites import agent_workers
from opik_connect.connect.suites.entrypoint import EntrypointSpec

real_spawn_child = agent_workers.spawn_child

async def traced_spawn_child(*cmd, **kwargs):
    child = await real_spawn_child(*cmd, **kwargs)
    running.append(child.pid)
    return child

agent_workers.spawn_child = traced_spawn_child

async def start():
    spec = EntrypointSpec("agent", "answer", ".", "agent.py")
    tree = Path(sys.argv[3])
    async with agent_workers.WorkerPool(tree, spec, 1, python=sys.executable) as pool:
        await pool.warm()
        await pool.call({})
"""


@pytest.mark.parametrize("how", ["teardown", "cancel"])
def test_a_stop_while_a_suite_starts_an_agent_worker_ends_and_leaves_no_worker(
    tmp_path: Path, how: str
) -> None:
    """A suite run's path: asyncio.run ends (or the run is cancelled) while its pool starts a
    worker in the agent's interpreter."""
    (tmp_path / "agent.py").write_text("def answer():\n    return {'output': 'ok'}\n")
    python = os.path.basename(sys.executable)
    try:
        outcomes = _sweep(WORKER, how, python, str(tmp_path))
        assert "spawning" in outcomes, outcomes
        assert _survivors(python, str(tmp_path)) == []
    finally:
        _kill(_survivors(python, str(tmp_path)))
