"""Whole lines from the daemon's terminal, read only while someone asks for one.

The `ollie>` prompt and the approval prompt take turns on one stdin. Reading registers
`loop.add_reader` for the duration of one read only, so the approval prompt (which registers its
own reader, in cbreak mode) can take over between reads; no thread, and stdin stays blocking
(making a tty non-blocking would make stdout non-blocking too, and rich's writes could fail).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import termios

CHUNK_BYTES = 4096


class LineReader:
    """Lines from one fd (a tty in its normal mode, or a pipe); cancel-safe between reads."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""
        self.eof = False

    async def read_line(self) -> str | None:
        """The next line without its newline; None at end of input."""
        while b"\n" not in self._buffer and not self.eof:
            await self._read_chunk()
        if b"\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n", 1)
            return raw.decode("utf-8", "replace").rstrip("\r")
        if self._buffer:
            raw, self._buffer = self._buffer, b""
            return raw.decode("utf-8", "replace")
        return None

    async def _read_chunk(self) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def on_readable() -> None:
            if ready.done():
                return
            chunk = os.read(self.fd, CHUNK_BYTES)
            if chunk:
                self._buffer += chunk  # kept here, so a cancelled read loses nothing
            else:
                self.eof = True
            ready.set_result(None)

        loop.add_reader(self.fd, on_readable)
        try:
            await ready
        finally:
            loop.remove_reader(self.fd)

    def drop_type_ahead(self) -> None:
        """Forget what was typed but not yet read: it must never answer the next question."""
        self._buffer = b""
        if os.isatty(self.fd):
            with contextlib.suppress(termios.error):
                termios.tcflush(self.fd, termios.TCIFLUSH)
            return
        while not self.eof and select.select([self.fd], [], [], 0)[0]:
            if not os.read(self.fd, CHUNK_BYTES):
                self.eof = True
