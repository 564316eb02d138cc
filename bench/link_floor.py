"""Where the floor of a ReadFile round trip lies, against the issue-14 limit (a websockets echo).

Run: .venv/bin/python bench/link_floor.py [--reps 3000] [--path stdlib/crypt.py]

Five round trips over loopback, interleaved, each with the CPU both processes spend per call:
1. websockets echo: the limit bench/real_repo.py measures (websockets on both ends);
2. raw echo: websockets' sans-I/O protocol driven from bare asyncio Protocols on both ends (the
   transport at its cheapest in Python);
3. link frames, no handler: that raw transport carrying the link's real sessions (PlatformSession
   sends a signed ReadFile command, DaemonSession checks it and answers with a signed result
   computed at start, the platform checks that and parses the ReadFileResult);
4. link frames + handler: the same with the daemon's real inline ReadFile handler;
5. the daemon: `opik-connect` and the real platform, as bench/real_repo.py measures them.
Rows 2 to 4 are not the product: they show how much of the gap to row 1 a new transport or a
free handler could close. The repo is bench/real_repo.py's (built once and cached).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from real_repo import (
    DEFAULT_CACHE,
    ECHO_SERVER,
    DaemonProcess,
    Timed,
    cpu_seconds,
    ensure_repo,
    interleaved,
    quiet,
)
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from opik_connect.agent.platform.runner_handle import parse_outcome
from opik_connect.link.auth import FrameSigner
from opik_connect.link.platform_session import CommandFinished, PlatformSession
from opik_connect.protocol import CommandResult, ReadFileArgs

PEER = Path(__file__).with_name("link_floor_peer.py")


class RawClient(asyncio.Protocol):
    """The calling side of rows 2-4: sans-I/O ClientProtocol, one future per round trip."""

    def __init__(self, port: int, key: bytes, conn_id: str) -> None:
        self.ws = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}"), max_size=None)
        self.session = PlatformSession(command_timeout_s=60)
        self.session.connect(FrameSigner(key, conn_id), time.time())
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.echoed: asyncio.Future[bytes] | None = None
        self.results: dict[str, asyncio.Future[CommandResult]] = {}
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.ws.send_request(self.ws.connect())
        self._flush()

    def _flush(self) -> None:
        for text in self.session.data_to_send():
            self.ws.send_text(text.encode())
        assert self.transport is not None
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Response):
                self.opened.set_result(None)
            elif event.opcode is Opcode.TEXT and self.echoed is not None:
                self.echoed.set_result(event.data)
            elif event.opcode is Opcode.TEXT:
                self.session.receive(event.data.decode(), time.time())
                for done in self.session.events():
                    if isinstance(done, CommandFinished):
                        self.results.pop(done.command_id).set_result(done.outcome)
        self._flush()

    async def echo(self, content: bytes) -> None:
        self.echoed = asyncio.get_running_loop().create_future()
        self.ws.send_text(content)
        self._flush()
        await self.echoed

    async def read(self, args: ReadFileArgs) -> None:
        payload = args.__pydantic_serializer__.to_python(args, mode="json")
        command_id = self.session.call("ReadFile", payload, time.time())
        future = self.results[command_id] = asyncio.get_running_loop().create_future()
        self._flush()
        outcome = await future
        self.session.forget(command_id)
        parse_outcome("ReadFile", outcome)


async def start(*argv: str) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    return proc, int(await proc.stdout.readline())


async def raw_client(port: int) -> RawClient:
    loop = asyncio.get_running_loop()
    from link_floor_peer import CONN_ID, KEY

    _, client = await loop.create_connection(
        lambda: RawClient(port, KEY, CONN_ID), "127.0.0.1", port
    )
    await client.opened
    return client


async def cpu_per_call(call: Timed, pid: int, n: int) -> tuple[float, float]:
    remote, local = cpu_seconds(pid), time.process_time()
    for _ in range(n):
        await call()
    return (cpu_seconds(pid) - remote) / n * 1e6, (time.process_time() - local) / n * 1e6


async def bench(opts: argparse.Namespace) -> None:
    from websockets.asyncio.client import connect

    root = ensure_repo(opts.cache)
    path = opts.path
    args = ReadFileArgs(path=path)
    procs: dict[str, asyncio.subprocess.Process] = {}
    calls: dict[str, Timed] = {}
    state = Path(tempfile.mkdtemp(prefix="opik-bench-state-"))
    os.environ["OPIK_CONNECT_STATE_DIR"] = str(state)
    daemon = DaemonProcess(root, state)
    runner, _ = await daemon.start()
    content = (await runner.read_file(args)).content  # the echoes carry what ReadFile returns

    proc, port = await start(sys.executable, "-c", ECHO_SERVER)
    procs["websockets echo"] = proc
    echo_ws = await connect(f"ws://127.0.0.1:{port}", compression=None, ping_interval=None)

    async def websockets_echo() -> None:
        await echo_ws.send(content)
        await echo_ws.recv()

    calls["websockets echo"] = websockets_echo
    for label, mode in (
        ("raw echo", "echo"),
        ("link frames, no handler", "frames"),
        ("link frames + handler", "handler"),
    ):
        proc, port = await start(sys.executable, str(PEER), mode, str(root), path)
        procs[label] = proc
        client = await raw_client(port)
        if mode == "echo":
            calls[label] = lambda c=client: c.echo(content.encode())
        else:
            calls[label] = lambda c=client: c.read(args)

    await asyncio.sleep(3)  # the watcher's set-up, as the daemon serves most of its life
    calls["opik-connect daemon"] = lambda: runner.read_file(args)
    try:
        load = quiet(opts.quiet_load, opts.quiet_wait)
        found = await interleaved(calls, opts.reps)
        limit = statistics.median(found["websockets echo"])
        print(f"ReadFile {path} ({len(content)} chars returned), {opts.reps} interleaved rounds")
        print("| round trip | p50 | / websockets echo | CPU per call: answering + calling | load |")
        print("|---|---|---|---|---|")
        for label, samples in found.items():
            pid = daemon.pid if label == "opik-connect daemon" else procs[label].pid
            answering, calling = await cpu_per_call(calls[label], pid, opts.cpu_calls)
            p50 = statistics.median(samples)
            print(
                f"| {label} | {p50 * 1e6:.0f} µs | {p50 / limit:.2f}× "
                f"| {answering:.0f} + {calling:.0f} µs | {os.getloadavg()[0]:.2f} |",
                flush=True,
            )
        print(f"(load before the rounds: {load:.2f})")
    finally:
        await echo_ws.close()
        for proc in procs.values():
            proc.terminate()
            await proc.wait()
        await daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3000)
    parser.add_argument("--cpu-calls", type=int, default=2000)
    parser.add_argument("--path", default="stdlib/crypt.py")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--quiet-load", type=float, default=1.0)
    parser.add_argument("--quiet-wait", type=float, default=120.0)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
