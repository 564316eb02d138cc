"""`opik-connect platform` as a real subprocess with JSON logs, and a daemon link paired to it.

The test waits on the platform's log records (stderr, one JSON object a line), never on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from link_testkit import CLI, root_summary

from opik_connect.agent.platform.cli import confirm_pairing_remote
from opik_connect.agent.platform.run_file import SERVER_RUN_FILE_NAME, PlatformRunFile
from opik_connect.connect.websocket_client import DaemonLink, LinkState, RunnerIdentity
from opik_connect.link.auth import PairingStore

WITHIN_S = 60.0
"""A bound on hangs only: every wait ends on a log line or an event."""


class PlatformProcess:
    """One `opik-connect platform --log-format json` process; its log records in `records`."""

    def __init__(self, proc: asyncio.subprocess.Process, state_dir: Path) -> None:
        self.proc = proc
        self.records: list[dict[str, Any]] = []
        self.raw_lines: list[str] = []
        self._cursor = 0
        self._state_dir = state_dir
        self.url = ""
        self.token = ""

    @classmethod
    async def start(
        cls, env: dict[str, str], cwd: Path, port: int = 0, *args: str
    ) -> PlatformProcess:
        proc = await asyncio.create_subprocess_exec(
            CLI,
            "platform",
            "--port",
            str(port),
            "--log-format",
            "json",
            *args,
            cwd=cwd,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        platform = cls(proc, Path(env["OPIK_CONNECT_STATE_DIR"]))
        listening = await platform.wait_log(r"^platform listening on ws://")
        platform.url = listening["message"].removeprefix("platform listening on ")
        run_file = platform._state_dir / SERVER_RUN_FILE_NAME
        platform.token = PlatformRunFile.model_validate_json(run_file.read_text()).token
        return platform

    @property
    def http(self) -> str:
        return self.url.replace("ws://", "http://", 1)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    async def wait_log(
        self, message: str, where: Callable[[dict[str, Any]], bool] = lambda record: True
    ) -> dict[str, Any]:
        """The next record (after the last one matched) whose message matches and `where` holds."""
        assert self.proc.stderr is not None
        async with asyncio.timeout(WITHIN_S):
            while True:
                while self._cursor < len(self.records):
                    record = self.records[self._cursor]
                    self._cursor += 1
                    if re.search(message, record.get("message", "")) and where(record):
                        return record
                line = (await self.proc.stderr.readline()).decode()
                if not line:
                    raise AssertionError(f"platform exited before {message!r}: {self.raw_lines}")
                self.raw_lines.append(line)
                self.records.append(json.loads(line))

    async def drain_logs(self) -> None:
        """Read (and parse) every line up to the process's end."""
        assert self.proc.stderr is not None
        async with asyncio.timeout(WITHIN_S):
            async for line in self.proc.stderr:
                self.raw_lines.append(line.decode())
                self.records.append(json.loads(line))

    async def get(self, path: str, *, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(timeout=WITHIN_S) as client:
            return await client.get(self.http + path, headers=headers)

    async def terminate(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self.exited()

    async def exited(self) -> int:
        """The exit code of a platform that stops by itself (drained, or signalled twice): no
        signal of ours may land while its loop closes, where CPython reports it on stderr."""
        await self.drain_logs()
        async with asyncio.timeout(WITHIN_S):
            return await self.proc.wait()

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


@asynccontextmanager
async def paired_link(
    platform: PlatformProcess, handlers: dict[str, Any], pairings: Path
) -> AsyncIterator[DaemonLink]:
    """A daemon link to `platform`, paired through the operator's confirmation, connected.

    Its pairing is kept in `pairings`, and the platform keeps its own in its state dir, so the
    link can reconnect to another platform process started on the same state dir and port.
    """
    states: list[tuple[LinkState, str]] = []
    confirmations: set[asyncio.Task[Any]] = set()

    def confirm(code: str, expires_at: float) -> None:
        task = asyncio.create_task(confirm_pairing_remote(platform.url, platform.token, code))
        confirmations.add(task)

    link = DaemonLink(
        platform.url,
        RunnerIdentity(runner_id="runner-ops", name="ops-runner", project="proj"),
        handlers=handlers,
        root_summary=root_summary,
        pairing_store=PairingStore(pairings),
        on_pair_code=confirm,
        on_state=lambda state, detail: states.append((state, detail)),
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
    )
    link.states = states  # type: ignore[attr-defined]
    task = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(WITHIN_S):
            await link.connected.wait()
        yield link
    finally:
        await link.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for confirmation in confirmations:
            confirmation.cancel()
