"""The answering side of bench/link_floor.py, run as its own process: `python link_floor_peer.py
MODE ROOT PATH` prints its port, then answers websocket text frames until killed.

It speaks websockets' sans-I/O ServerProtocol from a bare asyncio.Protocol: no Connection, no
receive queue, no task per message, so it shows what is left when the transport costs its least.
MODE is one of:
- echo: sends each text back (the transport's floor);
- frames: the link's real DaemonSession (signature, seq and frame checks, outbox, signed result)
  answering every ReadFile with one result computed at start (the frame path without a handler);
- handler: the same, with the real inline ReadFile handler over a watched Sandbox of ROOT.
Both ends use a fixed key and connection id: the pairing handshake is not what is measured.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.frames import Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from opik_connect.config import ProjectConfig
from opik_connect.connect.command_handlers import InlineHandler, run_handler_now
from opik_connect.connect.sandbox.read_commands import Sandbox
from opik_connect.connect.sandbox.watcher import run_watcher
from opik_connect.link.auth import FrameSigner
from opik_connect.link.daemon_session import DaemonSession, RunCommand
from opik_connect.protocol import ReadFileArgs

KEY = b"k" * 32
CONN_ID = "bench"
Answer = Callable[[RunCommand], dict[str, Any]]


class Peer(asyncio.Protocol):
    """One connection: every text frame is answered inside data_received."""

    def __init__(self, answer: Answer | None) -> None:
        self.answer = answer
        self.ws = ServerProtocol(max_size=None)
        self.session = DaemonSession()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.session.connect(FrameSigner(KEY, CONN_ID), 3600.0, time.time())
        self.session.data_to_send()  # the first heartbeat: the caller is not a platform

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Request):
                ws.send_response(ws.accept(event))
            elif event.opcode is Opcode.TEXT:
                self._text(event.data)
        assert self.transport is not None
        for chunk in ws.data_to_send():
            if chunk:
                self.transport.write(chunk)

    def _text(self, data: bytes) -> None:
        if self.answer is None:
            self.ws.send_text(data)
            return
        session = self.session
        session.receive(data.decode(), time.time())
        for event in session.events():
            if isinstance(event, RunCommand):
                session.command_done(event.command_id, self.answer(event))
        for text in session.data_to_send():
            self.ws.send_text(text.encode())


async def handler_answer(root: Path, path: str) -> Answer:
    """The daemon's inline ReadFile handler over a Sandbox kept current by the watcher."""
    sandbox = await Sandbox.open(root, ProjectConfig())
    handlers = {"ReadFile": InlineHandler(sandbox.read_file, sandbox.read_file_now)}
    stopping = asyncio.Event()

    async def changed(_: object) -> None:
        return None

    asyncio.get_running_loop().create_task(run_watcher(sandbox, changed, stopping))
    while not sandbox.index.watched:  # noqa: ASYNC110 (the watcher signals nothing when up)
        await asyncio.sleep(0.2)
    await sandbox.read_file(ReadFileArgs(path=path))

    def answer(run: RunCommand) -> dict[str, Any]:
        result = run_handler_now(handlers, run.type_name, run.payload)
        assert result is not None, "the inline handler stopped answering at once"
        return result

    return answer


async def main(mode: str, root: Path, path: str) -> None:
    answer: Answer | None = None
    if mode != "echo":
        read = await handler_answer(root, path)
        if mode == "frames":
            first = read(RunCommand("warm", "ReadFile", {"path": path}))
            answer = lambda _: first  # noqa: E731
        else:
            answer = read
    server = await asyncio.get_running_loop().create_server(lambda: Peer(answer), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3]))
