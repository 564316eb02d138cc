"""Following a session that runs on another replica: its stored events, then each new one.

The replica running a session stores each event and NOTIFYs it in the same transaction
(store_postgres.add_session_event); so does the sweep that ends a lost replica's session with its
result (replica_lost_sessions). A follower here reads what is stored, then waits for a notice
about its session and reads again from the last seq it sent: the same events, in the same order,
ending with the same `result` as on the replica running it. After a lost LISTEN connection,
every follower reads again (notices sent meanwhile are lost).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from opik_connect.agent.ollie.sessions import TERMINAL_TYPES
from opik_connect.agent.platform.store import PlatformStore
from opik_connect.protocol import AskEvent

UNFINISHED = frozenset({"pending", "running"})


class StoredSessionFollowers:
    """This replica's followers of sessions in the shared store, woken by their notices."""

    def __init__(self, store: PlatformStore) -> None:
        self._store = store
        self._waiting: dict[str, set[asyncio.Event]] = {}

    def followed(self) -> set[str]:
        """The sessions someone follows here now."""
        return set(self._waiting)

    def notified(self, session_id: str) -> None:
        """A notice: the session has a new stored event."""
        for wake in self._waiting.get(session_id, ()):
            wake.set()

    def wake_all(self) -> None:
        """Notices may have been missed (the LISTEN connection was lost): every follower reads."""
        for waiting in self._waiting.values():
            for wake in waiting:
                wake.set()

    async def follow(self, session_id: str) -> AsyncIterator[AskEvent] | None:
        """The session's events from the first, or None when the store has no such session."""
        if await self._store.get_session(session_id) is None:
            return None
        return self._stream(session_id)

    async def _stream(self, session_id: str) -> AsyncIterator[AskEvent]:
        wake = asyncio.Event()
        self._waiting.setdefault(session_id, set()).add(wake)  # before reading: no notice missed
        try:
            last = 0
            while True:
                wake.clear()
                # The outcome before the events: a session's replica stores every event, then
                # its outcome, then its result, so once an outcome is seen here, the read below
                # has every event but (maybe) the result.
                session = await self._store.get_session(session_id)
                ended = session is not None and session.status not in UNFINISHED
                for record in await self._store.session_events(session_id, after=last):
                    last = record.seq
                    yield AskEvent(
                        session_id=session_id, seq=record.seq, type=record.type, data=record.data
                    )
                    if record.type in TERMINAL_TYPES:
                        return
                if ended and session is not None:
                    # No result stored: its replica died between the outcome and the result
                    # (or has not written it yet). The result it writes is that record.
                    data = session.model_dump(mode="json")
                    yield AskEvent(session_id=session_id, seq=last + 1, type="result", data=data)
                    return
                await wake.wait()
        finally:
            waiting = self._waiting.get(session_id, set())
            waiting.discard(wake)
            if not waiting:
                self._waiting.pop(session_id, None)
