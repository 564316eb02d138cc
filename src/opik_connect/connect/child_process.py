"""Start a child process that no cancellation can orphan or hang: not a timeout, not a dropped
link, not the event loop's teardown (a daemon stopped while a search starts ripgrep).

`asyncio.create_subprocess_exec(stdout=PIPE)` forks, then connects the pipes in a task of its
own. Cancelled there (asyncio.run's teardown cancels every task, that one too), it kills the
child, then waits forever for pipes that never connected, and the loop never closes (CPython
gh-125502; Python 3.11 keeps it). So the pipes are made here and the child gets their other
ends as plain descriptors: asyncio has nothing to connect, and a cancelled spawn kills and
reaps the child by itself. Our ends are connected after the spawn, in the caller's task, where
a cancellation only leads to the usual way out: the child killed and reaped.

`spawn_child` starts one for an owner that keeps it (a suite's agent worker, an editor);
`child_process` is the common case, a child killed and reaped when its block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import BinaryIO

DEFAULT_STREAM_LIMIT = 32 << 20
PIPE = asyncio.subprocess.PIPE
DEVNULL = asyncio.subprocess.DEVNULL


class Child:
    """A running child and our ends of its pipes, as asyncio.subprocess.Process has them (None
    for a stream not piped)."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        stdin: asyncio.StreamWriter | None,
        stdout: asyncio.StreamReader | None,
        stderr: asyncio.StreamReader | None,
        ends: contextlib.ExitStack,
    ) -> None:
        self.proc = proc
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self._ends = ends

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def kill(self) -> None:
        self.proc.kill()

    async def wait(self) -> int:
        return await self.proc.wait()

    async def communicate(self, data: bytes | None = None) -> tuple[bytes, bytes]:
        """Writes `data` to stdin and closes it, reads stdout and stderr to their ends (b"" for
        one not piped), waits."""
        _, out, err = await asyncio.gather(
            self._feed(data), _read_all(self.stdout), _read_all(self.stderr)
        )
        await self.proc.wait()
        return out, err

    def close(self) -> None:
        """Closes our ends of the pipes now (communicate leaves them closed; a grandchild may
        hold theirs open past the child)."""
        self._ends.close()

    async def _feed(self, data: bytes | None) -> None:
        if self.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            if data:
                self.stdin.write(data)
                await self.stdin.drain()
        self.stdin.close()


async def spawn_child(
    *cmd: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    start_new_session: bool = False,
    limit: int = DEFAULT_STREAM_LIMIT,
) -> Child:
    """Start `cmd` (no shell) as asyncio.create_subprocess_exec does, each stream PIPE (a pipe
    made here), DEVNULL, a descriptor, or None (inherited). The caller owns the Child: it reaps
    it and closes it; a spawn cancelled or failed leaves nothing behind."""
    loop = asyncio.get_running_loop()
    with contextlib.ExitStack() as ends:
        theirs: list[int] = []
        try:
            feed, child_in = _stream(stdin, ends, theirs, reading=False)
            out, child_out = _stream(stdout, ends, theirs, reading=True)
            err, child_err = _stream(stderr, ends, theirs, reading=True)
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                cwd=cwd,
                env=env,
                stdin=child_in,
                stdout=child_out,
                stderr=child_err,
                start_new_session=start_new_session,
            )
        finally:
            for fd in theirs:
                os.close(fd)
        try:
            writer = None if feed is None else await _writer(loop, feed, ends)
            out_reader = None if out is None else await _reader(loop, out, limit, ends)
            err_reader = None if err is None else await _reader(loop, err, limit, ends)
        except BaseException:
            await _reap(proc)
            raise
        return Child(proc, writer, out_reader, err_reader, ends.pop_all())


@contextlib.asynccontextmanager
async def child_process(
    *cmd: str,
    cwd: Path,
    stdin_pipe: bool = False,
    limit: int = DEFAULT_STREAM_LIMIT,
) -> AsyncIterator[Child]:
    """Run `cmd` (no shell) with stdout and stderr piped; kill and reap it on exit."""
    child = await spawn_child(
        *cmd,
        cwd=cwd,
        stdin=PIPE if stdin_pipe else DEVNULL,
        stdout=PIPE,
        stderr=PIPE,
        limit=limit,
    )
    try:
        yield child
    finally:
        await _reap(child.proc)
        child.close()


def _stream(
    spec: int | None, ends: contextlib.ExitStack, theirs: list[int], *, reading: bool
) -> tuple[BinaryIO | None, int | None]:
    """Our end of one stream (closed with `ends`) and what the child gets: a new pipe when
    `spec` is PIPE (the child's end added to `theirs`), else no end of ours and `spec`."""
    if spec != PIPE:
        return None, spec
    read_fd, write_fd = os.pipe()
    mine, child = (read_fd, write_fd) if reading else (write_fd, read_fd)
    theirs.append(child)
    return ends.enter_context(open(mine, "rb" if reading else "wb", buffering=0)), child


async def _read_all(reader: asyncio.StreamReader | None) -> bytes:
    return b"" if reader is None else await reader.read()


async def _reader(
    loop: asyncio.AbstractEventLoop, pipe: BinaryIO, limit: int, ends: contextlib.ExitStack
) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe
    )
    ends.callback(transport.close)
    return reader


async def _writer(
    loop: asyncio.AbstractEventLoop, pipe: BinaryIO, ends: contextlib.ExitStack
) -> asyncio.StreamWriter:
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, pipe)
    ends.callback(_drop, transport)
    return asyncio.StreamWriter(transport, protocol, None, loop)


def _drop(transport: asyncio.WriteTransport) -> None:
    """Closes our end of the child's stdin at once, before its descriptor is: what the child
    was still to get is dropped (a transport closing with nothing left to write is done)."""
    if not transport.is_closing() or transport.get_write_buffer_size():
        transport.abort()


async def _reap(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
