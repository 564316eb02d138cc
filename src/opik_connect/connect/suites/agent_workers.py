"""A pool of long-lived agent workers for one suite run, so starting Python never dominates a run.

Each worker is `agent_worker_child.py`, started by path in the agent's own interpreter, cwd = the
tree under test and the tree's import root first on sys.path, speaking JSON lines. A run that
crashes or hangs fails that run only: the worker is killed and a fresh one replaces it on the next
call. An environment that cannot load the agent at all (no interpreter, a dependency missing from
it or lacking a name the agent imports) is an AGENT_ENVIRONMENT error for the whole run, never a
failed assertion.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from opik_connect.connect.child_process import PIPE, Child, spawn_child
from opik_connect.connect.suites.agent_worker_child import FLUSH_TIMEOUT_S
from opik_connect.connect.suites.entrypoint import EntrypointSpec
from opik_connect.connect.suites.suite_files import CALL_KWARGS, CallMode
from opik_connect.protocol import BridgeError, ErrorCode

CHILD_SCRIPT = Path(__file__).with_name("agent_worker_child.py")
STREAM_LIMIT = 16 << 20
STDERR_KEEP = 64 << 10
ERROR_TAIL = 4000
CLOSE_GRACE_S = FLUSH_TIMEOUT_S + 5
"""A leaving worker may be flushing the opik SDK; it is killed only after the flush deadline."""


@dataclass(frozen=True)
class CallOutcome:
    """One entrypoint call: the result dict (Opik shape, with `output`) or what went wrong."""

    ok: bool
    result: dict[str, Any] | None
    error: str | None
    duration_s: float
    trace_id: str | None = None
    """The trace the SDK logged for this call, when the worker could name it."""


class WorkerStartError(Exception):
    """The entrypoint could not be loaded; every later call would fail the same way.

    `environment` is set when the agent's environment is at fault (no interpreter, a missing
    module that is not part of the tree), rather than the tree's code."""

    def __init__(self, message: str, *, environment: bool = False) -> None:
        super().__init__(message)
        self.environment = environment


class AgentWorker:
    def __init__(
        self, tree: Path, spec: EntrypointSpec, python: str, env: Mapping[str, str]
    ) -> None:
        self.tree = tree
        self.spec = spec
        self.python = python
        self.env = env
        self.alive = False
        self._proc: Child | None = None
        self._stderr = bytearray()
        self._stderr_dropped = 0
        self._drain: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)

    async def start(self, limit_s: float) -> None:
        env = dict(self.env, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
        try:
            self._proc = await spawn_child(
                self.python,
                str(CHILD_SCRIPT),
                str(self.tree),
                self.spec.import_root,
                self.spec.module,
                self.spec.function,
                cwd=self.tree,
                env=env,
                stdin=PIPE,
                stdout=PIPE,
                stderr=PIPE,
                limit=STREAM_LIMIT,
            )
        except OSError as exc:
            raise WorkerStartError(
                f"the agent's interpreter {self.python} cannot start: {exc.strerror or exc}",
                environment=True,
            ) from None
        self._drain = asyncio.create_task(self._drain_stderr())
        try:
            async with asyncio.timeout(limit_s):
                line = await self._proc.stdout.readline()  # type: ignore[union-attr]
        except TimeoutError:
            await self.kill()
            raise WorkerStartError(f"entrypoint did not load within {limit_s:g}s") from None
        hello = _parse(line)
        if not hello.get("ready"):
            await self.kill()
            detail = hello.get("error") or self._stderr_since(0) or "worker exited"
            missing, broken = hello.get("missing_module"), hello.get("broken_module")
            if isinstance(missing, str) and not self._in_tree(missing):
                raise WorkerStartError(
                    f"module {missing!r} is not installed in the agent's interpreter "
                    f"{self.python} (entrypoint {self.spec.label}):\n{detail}",
                    environment=True,
                )
            if isinstance(broken, str) and not self._in_tree(broken):
                raise WorkerStartError(
                    f"module {broken!r} in the agent's interpreter {self.python} does not "
                    f"provide what entrypoint {self.spec.label} imports (a version mismatch?):"
                    f"\n{detail}",
                    environment=True,
                )
            raise WorkerStartError(f"entrypoint {self.spec.label} failed to load:\n{detail}")
        self.alive = True

    def _in_tree(self, module: str) -> bool:
        """Whether a missing module is the tree's own (a code problem, not the environment's)."""
        top = module.partition(".")[0]
        bases = {self.tree, self.tree / self.spec.import_root}
        return any((b / top).is_dir() or (b / f"{top}.py").is_file() for b in bases)

    async def call(
        self,
        data: dict[str, Any],
        limit_s: float,
        trace: dict[str, Any] | None = None,
        call: CallMode = CALL_KWARGS,
    ) -> CallOutcome:
        """One request; the worker stays alive only if it answered this request cleanly."""
        assert self._proc is not None and self._proc.stdin and self._proc.stdout
        self.alive = False
        request_id = next(self._ids)
        mark = self._stderr_mark()
        started = time.monotonic()
        try:
            request = {"id": request_id, "data": data, "call": call, "trace": trace}
            payload = json.dumps(request, default=str)
            self._proc.stdin.write(payload.encode() + b"\n")
            async with asyncio.timeout(limit_s):
                await self._proc.stdin.drain()
                line = await self._proc.stdout.readline()
        except TimeoutError:
            await self.kill()
            return self._failure(f"timed out after {limit_s:g}s", mark, started)
        except (ConnectionError, ValueError) as exc:
            await self.kill()
            return self._failure(f"worker channel broke: {exc}", mark, started)
        if not line:
            code = await self._proc.wait()
            return self._failure(f"worker crashed (exit code {code})", mark, started)
        reply = _parse(line)
        duration = time.monotonic() - started
        if reply.get("id") != request_id:
            await self.kill()
            return self._failure("worker answered out of turn", mark, started)
        self.alive = True
        trace_id = reply.get("trace_id") if isinstance(reply.get("trace_id"), str) else None
        if reply.get("ok"):
            return CallOutcome(True, reply.get("result"), None, duration, trace_id)
        return CallOutcome(False, None, str(reply.get("error")), duration, trace_id)

    def _failure(self, headline: str, mark: int, started: float) -> CallOutcome:
        output = self._stderr_since(mark)
        error = headline + (f"\n--- output ---\n{output}" if output else "")
        return CallOutcome(False, None, error, time.monotonic() - started)

    async def kill(self) -> None:
        self.alive = False
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._proc.wait()
        await self._release()

    async def close(self) -> None:
        """Let the child flush and leave on end of input; kill it if it outlasts the deadline."""
        self.alive = False
        if self._proc is None or self._proc.returncode is not None:
            await self._release()
            return
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            async with asyncio.timeout(CLOSE_GRACE_S):
                await self._proc.wait()
        except TimeoutError:
            await self.kill()
        await self._release()

    async def _release(self) -> None:
        """Reads what the gone child left on stderr, then closes our ends of its pipes."""
        if self._drain is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(1):
                    await self._drain
            self._drain.cancel()
        if self._proc is not None:
            self._proc.close()

    async def _drain_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while chunk := await self._proc.stderr.read(65536):
            self._stderr.extend(chunk)
            excess = len(self._stderr) - STDERR_KEEP
            if excess > 0:
                del self._stderr[:excess]
                self._stderr_dropped += excess

    def _stderr_mark(self) -> int:
        return self._stderr_dropped + len(self._stderr)

    def _stderr_since(self, mark: int) -> str:
        start = max(0, mark - self._stderr_dropped)
        text = self._stderr[start:].decode("utf-8", "replace").strip()
        return text[-ERROR_TAIL:]


def _parse(line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class WorkerPool:
    """At most `size` workers; idle ones are reused, dead ones replaced on demand."""

    def __init__(
        self,
        tree: Path,
        spec: EntrypointSpec,
        size: int,
        *,
        run_timeout: float = 60.0,
        startup_timeout: float = 30.0,
        python: str,
        env: Mapping[str, str] | None = None,
        call: CallMode = CALL_KWARGS,
    ) -> None:
        self.tree = tree.resolve()
        self.call_mode = call
        self.spec = spec
        self.run_timeout = run_timeout
        self.startup_timeout = startup_timeout
        self.python = python
        self.env = dict(os.environ if env is None else env)
        self._size = max(1, size)
        self._slots = asyncio.Semaphore(self._size)
        self._idle: list[AgentWorker] = []
        self._all: set[AgentWorker] = set()
        self._returned = asyncio.Condition()
        self._start_cost = 0.0
        self._load_error: str | None = None

    async def __aenter__(self) -> WorkerPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def warm(self) -> None:
        """Start one worker before any run, so an environment that cannot load the agent stops
        the whole run as AGENT_ENVIRONMENT (exit 2) instead of failing every item; its start-up
        time is what a further worker is expected to cost."""
        started = time.monotonic()
        try:
            worker = await self._start_worker()
        except WorkerStartError as exc:
            if exc.environment:
                raise BridgeError(
                    ErrorCode.AGENT_ENVIRONMENT, str(exc), python=self.python
                ) from None
            self._load_error = str(exc)
            return
        self._start_cost = time.monotonic() - started
        self._idle.append(worker)

    async def _start_worker(self) -> AgentWorker:
        worker = AgentWorker(self.tree, self.spec, self.python, self.env)
        self._all.add(worker)
        try:
            await worker.start(self.startup_timeout)
        except WorkerStartError:
            self._all.discard(worker)
            raise
        return worker

    async def call(self, data: dict[str, Any], trace: dict[str, Any] | None = None) -> CallOutcome:
        """Run the entrypoint once on an item's data, as the pool's call mode says (keyword
        arguments, or whole as `opik.run_tests` passes it); never raises for anything the agent
        does. `trace` (tags, metadata) goes to the real opik SDK as `opik_args` when it traces
        the entrypoint."""
        async with self._slots:
            started = time.monotonic()
            if self._load_error is not None:
                return CallOutcome(False, None, self._load_error, 0.0)
            worker = await self._idle_worker()
            if worker is None:
                try:
                    worker = await self._start_worker()
                except WorkerStartError as exc:
                    self._load_error = str(exc)
                    return CallOutcome(False, None, str(exc), time.monotonic() - started)
            try:
                outcome = await worker.call(data, self.run_timeout, trace, self.call_mode)
            finally:
                async with self._returned:
                    if worker.alive:
                        self._idle.append(worker)
                    else:
                        self._all.discard(worker)
                    self._returned.notify_all()
                if not worker.alive:
                    await worker.kill()
            return outcome

    async def _idle_worker(self) -> AgentWorker | None:
        """An idle worker, waiting for one while starting another would cost more than the wait:
        a fast agent keeps one warm worker busy instead of paying every worker's start-up (the
        opik SDK alone takes a second or more to import). None means: start a worker."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_cost
        async with self._returned:
            while not self._idle:
                full = len(self._all) >= self._size
                if not self._all or (not full and loop.time() >= deadline):
                    return None
                try:
                    async with asyncio.timeout(None if full else deadline - loop.time()):
                        await self._returned.wait()
                except TimeoutError:
                    continue
            return self._idle.pop()

    async def close(self) -> None:
        workers, self._all, self._idle = list(self._all), set(), []
        await asyncio.gather(*(w.close() for w in workers), return_exceptions=True)
