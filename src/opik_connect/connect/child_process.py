"""Start a child process that no cancellation can orphan or hang: not a timeout, not a dropped
link, not the event loop's teardown (a daemon stopped while a search starts ripgrep).

`asyncio.create_subprocess_exec(stdout=PIPE)` forks, then connects the pipes in a task of its
own. Cancelled there (asyncio.run's teardown cancels every task, that one too), it kills the
child, then waits forever for pipes that never connected, and the loop never closes (CPython
gh-125502; Python 3.11 keeps it). So the pipes are made here and the child gets their other
ends as plain descriptors: asyncio has nothing to connect, and a cancelled spawn kills and
reaps the child by itself. Our ends are connected after the spawn, in the caller's task, where
a cancellation only leads to the usual way out: the child killed and reaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

DEFAULT_STREAM_LIMIT = 32 << 20


class Child:
    """A running child and our ends of its pipes, as asyncio.subprocess.Process has them."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        stdin: asyncio.StreamWriter | None,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
    ) -> None:
        self.proc = proc
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    async def wait(self) -> int:
        return await self.proc.wait()

    async def communicate(self, data: bytes | None = None) -> tuple[bytes, bytes]:
        """Writes `data` to stdin and closes it, reads stdout and stderr to their ends, waits."""
        _, out, err = await asyncio.gather(self._feed(data), self.stdout.read(), self.stderr.read())
        await self.proc.wait()
        return out, err

    async def _feed(self, data: bytes | None) -> None:
        if self.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            if data:
                self.stdin.write(data)
                await self.stdin.drain()
        self.stdin.close()


@contextlib.asynccontextmanager
async def child_process(
    *cmd: str,
    cwd: Path,
    stdin_pipe: bool = False,
    limit: int = DEFAULT_STREAM_LIMIT,
) -> AsyncIterator[Child]:
    """Run `cmd` (no shell) with stdout and stderr piped; kill and reap it on exit."""
    loop = asyncio.get_running_loop()
    theirs: list[int] = []
    with contextlib.ExitStack() as ours:
        try:
            out = _pipe(ours, theirs, reading=True)
            err = _pipe(ours, theirs, reading=True)
            feed = _pipe(ours, theirs, reading=False) if stdin_pipe else None
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                cwd=cwd,
                stdin=theirs[2] if stdin_pipe else asyncio.subprocess.DEVNULL,
                stdout=theirs[0],
                stderr=theirs[1],
            )
        finally:
            for fd in theirs:
                os.close(fd)
        transports: list[asyncio.BaseTransport] = []
        try:
            stdin = None if feed is None else await _writer(loop, feed, transports)
            stdout = await _reader(loop, out, limit, transports)
            stderr = await _reader(loop, err, limit, transports)
            yield Child(proc, stdin, stdout, stderr)
        finally:
            await _reap(proc)
            for transport in transports:
                transport.close()


def _pipe(ours: contextlib.ExitStack, theirs: list[int], *, reading: bool) -> BinaryIO:
    """A new pipe: our end (read from when `reading`) closed with `ours`, the child's end's
    descriptor added to `theirs`."""
    read_fd, write_fd = os.pipe()
    mine, child = (read_fd, write_fd) if reading else (write_fd, read_fd)
    theirs.append(child)
    return ours.enter_context(open(mine, "rb" if reading else "wb", buffering=0))


async def _reader(
    loop: asyncio.AbstractEventLoop,
    pipe: BinaryIO,
    limit: int,
    transports: list[asyncio.BaseTransport],
) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe
    )
    transports.append(transport)
    return reader


async def _writer(
    loop: asyncio.AbstractEventLoop, pipe: BinaryIO, transports: list[asyncio.BaseTransport]
) -> asyncio.StreamWriter:
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, pipe)
    transports.append(transport)
    return asyncio.StreamWriter(transport, protocol, None, loop)


async def _reap(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
