"""Helpers for the link tests: handlers, a linked pair, misbehaving peers, the CLI.

Helpers for the link tests: tiny handlers, a linked platform+daemon, raw peers that misbehave,
the `opik-connect` CLI in a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from opik_connect.agent.platform.server import Platform, RunnerHandle
from opik_connect.config import user_state_dir
from opik_connect.connect.daemon import stable_runner_id
from opik_connect.connect.websocket_client import DaemonLink, LinkState, RunnerIdentity
from opik_connect.link.auth import (
    FrameSigner,
    PairingRecord,
    PairingStore,
    connection_id,
    new_activation_key,
    new_nonce,
    sign_hello,
)
from opik_connect.link.frames import decode_frame
from opik_connect.protocol import (
    BridgeError,
    ErrorCode,
    Frame,
    FrameKind,
    Hello,
    ReadFileArgs,
    ReadFileResult,
    RootSummary,
    Welcome,
)

ROOT = RootSummary(root="/tmp/project", visible_files=3, branch="main", head=None)
CLI = str(Path(sys.executable).with_name("opik-connect"))


def pre_pair_project(platform: Platform, repo: Path) -> str:
    """Pair `repo`'s runner with `platform` beforehand, in the user state; its runner id."""
    runner_id = stable_runner_id(repo)
    record = platform.pre_pair(runner_id, new_activation_key(), project=repo.name)
    PairingStore(user_state_dir() / "pairings.json").put(f"{platform.url} {repo}", record)
    return runner_id


async def start_cli(
    args: list[str], cwd: Path, env: dict[str, str], **options: Any
) -> asyncio.subprocess.Process:
    """`opik-connect ARGS` in a subprocess, its stdout and stderr merged into one pipe."""
    return await asyncio.create_subprocess_exec(
        CLI,
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        **options,
    )


async def read_until(
    proc: asyncio.subprocess.Process, pattern: str, seen: list[str], within: float = 20.0
) -> re.Match[str]:
    """Read `proc`'s output lines into `seen` until one matches `pattern`; fail on exit."""
    assert proc.stdout is not None
    async with asyncio.timeout(within):
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise AssertionError(f"exited before {pattern!r}: {''.join(seen)}")
            seen.append(line)
            if match := re.search(pattern, line):
                return match


async def root_summary() -> RootSummary:
    return ROOT


class EchoHandlers:
    """ReadFile that echoes the path; 'sleep:S' sleeps S seconds, 'boom' fails, 'gone' is coded."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.started = asyncio.Event()

    async def read_file(self, args: ReadFileArgs) -> ReadFileResult:
        self.calls.append(args.path)
        self.started.set()
        if args.path.startswith("sleep:"):
            await asyncio.sleep(float(args.path.split(":", 1)[1]))
        elif args.path == "boom":
            raise RuntimeError("secret internals /home/user/.ssh")
        elif args.path == "gone":
            raise BridgeError(ErrorCode.FILE_NOT_FOUND, "no such file: gone")
        return ReadFileResult(content=args.path, total_lines=1, truncated=False)

    def table(self) -> dict[str, Any]:
        return {"ReadFile": self.read_file}


def make_link(url: str, record: PairingRecord | None, handlers: dict, **kwargs: Any) -> DaemonLink:
    states: list[tuple[LinkState, str]] = []
    kwargs.setdefault("on_state", lambda state, detail: states.append((state, detail)))
    identity = RunnerIdentity(
        runner_id=record.runner_id if record else "runner-remote", name="test", project="proj"
    )
    link = DaemonLink(
        url,
        identity,
        handlers=handlers,
        root_summary=root_summary,
        pairing=record,
        **kwargs,
    )
    link.states = states  # type: ignore[attr-defined]
    return link


@asynccontextmanager
async def linked(
    handlers: dict | None = None, platform: Platform | None = None, **link_kwargs: Any
) -> AsyncIterator[tuple[Platform, RunnerHandle, DaemonLink]]:
    """A started platform and a pre-paired DaemonLink, connected."""
    platform = platform or Platform()
    await platform.start()
    record = platform.pre_pair(uuid.uuid4().hex, new_activation_key())
    link = make_link(platform.url, record, handlers or EchoHandlers().table(), **link_kwargs)
    task = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(10):
            handle = await platform.wait_runner(record.runner_id)
        yield platform, handle, link
    finally:
        await link.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await platform.stop()


class RawDaemon:
    """A hand-driven daemon end: completes the handshake, then sends whatever a test wants."""

    def __init__(self, ws: ClientConnection, signer: FrameSigner) -> None:
        self.ws = ws
        self.signer = signer

    @classmethod
    async def connect(cls, platform: Platform, record: PairingRecord) -> RawDaemon:
        ws = await connect(platform.url, max_size=None)
        nonce = new_nonce()
        hello = Hello(
            runner_id=record.runner_id, runner_name="raw", project="p", root=ROOT, nonce=nonce
        )
        key = record.link_key()
        await ws.send(sign_hello(key, nonce, "h1", hello.model_dump()).model_dump_json())
        reply = decode_frame(await ws.recv())
        welcome = Welcome.model_validate(reply.payload)
        signer = FrameSigner(key, connection_id(nonce, welcome.nonce))
        signer.verify(reply)
        return cls(ws, signer)

    async def send(self, kind: FrameKind, type_name: str, payload: dict, msg_id: str = "") -> Frame:
        frame = self.signer.seal(kind, type_name, msg_id or uuid.uuid4().hex, payload)
        await self.ws.send(frame.model_dump_json())
        return frame

    async def recv(self, within: float = 5.0) -> Frame:
        async with asyncio.timeout(within):
            return decode_frame(await self.ws.recv())


class SilentPlatform:
    """A platform that completes the handshake and then never acks anything: it only records
    the frames it gets (heartbeats aside) and the close code of each connection."""

    def __init__(self, record: PairingRecord, welcome_extra: dict | None = None) -> None:
        self.record = record
        self.welcome_extra = welcome_extra or {}
        self.frames: asyncio.Queue[Frame] = asyncio.Queue()
        self.closes: asyncio.Queue[int | None] = asyncio.Queue()
        self.url = ""

    async def serve(self, ws: ServerConnection) -> None:
        hello = Hello.model_validate(decode_frame(await ws.recv()).payload)
        nonce = new_nonce()
        signer = FrameSigner(self.record.link_key(), connection_id(hello.nonce, nonce))
        welcome = Welcome(nonce=nonce).model_dump() | self.welcome_extra
        await ws.send(signer.seal_text("control", "Welcome", "w", welcome))
        try:
            async for message in ws:
                frame = signer.open(message)
                if frame.type != "Heartbeat":
                    self.frames.put_nowait(frame)
        except ConnectionClosed:
            pass
        self.closes.put_nowait(ws.close_code)


@asynccontextmanager
async def silent_link(
    welcome_extra: dict | None = None, **link_kwargs: Any
) -> AsyncIterator[tuple[SilentPlatform, DaemonLink]]:
    """A DaemonLink connected to a SilentPlatform."""
    record = PairingRecord(runner_id="r", activation_key=new_activation_key(), session_id="s")
    platform = SilentPlatform(record, welcome_extra)
    async with serve(platform.serve, "127.0.0.1", 0) as server:
        platform.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        link = make_link(platform.url, record, {}, **link_kwargs)
        task = asyncio.create_task(link.run())
        try:
            async with asyncio.timeout(10):
                await link.connected.wait()
            yield platform, link
        finally:
            await link.stop()
            await task


def raw_frame(**fields: Any) -> str:
    base = {"kind": "event", "type": "FilesChanged", "id": uuid.uuid4().hex, "payload": {}}
    base.update(fields)
    return json.dumps(base)
