"""One runner's event writes, one after another in the order its events arrived.

The platform hands each event to its subscribers as a task of its own; on a store with a
connection pool (PostgreSQL) two such writes can then commit out of order, and a decision's fix
record would read the runner's suite results before the one that arrived just ahead of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


class ArrivalOrder:
    """Chains awaitables per key: each starts once the key's previous one is done (or failed)."""

    def __init__(self) -> None:
        self._last: dict[str, asyncio.Future[None]] = {}

    def after_previous(self, key: str, write: Awaitable[None]) -> asyncio.Future[None]:
        previous = self._last.get(key)

        async def in_turn() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await write

        task = asyncio.ensure_future(in_turn())
        self._last[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))
        return task

    def _forget(self, key: str, done: asyncio.Future[None]) -> None:
        if self._last.get(key) is done:
            del self._last[key]
