"""The watcher's batches, counted: a search waits for the one holding the changes already queued."""

from __future__ import annotations

import asyncio
import math
import select


def _queued(fd: int) -> bool:
    """Whether the descriptor has events unread (a zero-timeout poll: no wait, one syscall)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class WatcherBatches:
    """Which batch applies the changes the kernel has queued for the watcher by now.

    inotify queues an event when the write happens, so at any moment the changes made so far
    are in a batch being read (all that is queued, until the descriptor is empty), in one read
    and not yet applied, or still queued: then the next batch to be read holds them. `settled`
    names that batch, once, when called: what is queued later is not waited for, so a tree that
    keeps changing does not hold a search up for more than one batch."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._begun = 0
        self._applied = 0
        self._reading = False
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def settled(self) -> asyncio.Future[None] | None:
        """Done once every change queued now is applied to the sandbox; None: nothing is
        pending (no batch in hand, nothing queued)."""
        batch = self._begun if self._reading or not _queued(self._fd) else self._begun + 1
        if batch <= self._applied:
            return None
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((batch, waiter))
        return waiter

    def reading(self) -> None:
        """A batch starts reading the queue (it reads until the queue is empty)."""
        self._begun += 1
        self._reading = True

    def read(self) -> None:
        """The batch has read all that was queued."""
        self._reading = False

    def applied(self) -> None:
        """The batch is applied to the sandbox (or held nothing visible)."""
        self._applied = self._begun
        self._release(self._applied)

    def close(self) -> None:
        """The watcher stops: nothing it has will be applied, so no search waits for it."""
        self._release(math.inf)

    def _release(self, upto: float) -> None:
        """Wake the searches waiting for a batch up to `upto` (one that gave up is skipped)."""
        for batch, waiter in self._waiters:
            if batch <= upto and not waiter.done():
                waiter.set_result(None)
        self._waiters = [(batch, waiter) for batch, waiter in self._waiters if batch > upto]
