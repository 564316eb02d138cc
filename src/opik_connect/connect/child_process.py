"""Start a child process so that no cancellation (a timeout, a dropped link) can orphan it.

Cancelling `asyncio.create_subprocess_exec` while it runs leaves a started child that nobody
waits for, and the event loop can then hang at close; so creation is shielded and the child is
always killed and reaped on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

DEFAULT_STREAM_LIMIT = 32 << 20


@contextlib.asynccontextmanager
async def child_process(
    *cmd: str,
    cwd: Path,
    stdin_pipe: bool = False,
    limit: int = DEFAULT_STREAM_LIMIT,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run `cmd` (no shell) with stdout and stderr piped; kill and reap it on exit."""
    creating = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *cmd,
            cwd=cwd,
            stdin=asyncio.subprocess.PIPE if stdin_pipe else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=limit,
        )
    )
    try:
        proc = await asyncio.shield(creating)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await _reap(await creating)
        raise
    try:
        yield proc
    finally:
        await _reap(proc)


async def _reap(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
