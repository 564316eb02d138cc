"""PostgreSQL as the replicas' message bus: NOTIFY out, LISTEN in, and statements on a pool.

A message over NOTIFY's payload limit is written to replica_payloads in the same statement as
its NOTIFY, which then carries only the row id; a message addressed to one replica is deleted when
read, a broadcast one is left for every replica and swept later.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ValidationError

from opik_connect.agent.platform.replica_wire import (
    MESSAGES,
    NOTIFY_LIMIT_BYTES,
    POOL_SUFFIX,
    PayloadRef,
    ReplicaMessage,
)

log = logging.getLogger(__name__)

POOL_SIZE = 4
"""Pooled connections for sending and reading; LISTEN has one of its own."""

_SEND_BY_REF = """
WITH p AS (INSERT INTO replica_payloads (body) VALUES (%s) RETURNING id)
SELECT pg_notify(%s, json_build_object('k', 'ref', 'id', p.id)::text) FROM p
"""


class ReplicaBus:
    """One replica's connections. Open with `await ReplicaBus.connect(url, name)`."""

    def __init__(
        self,
        listen: psycopg.AsyncConnection[Any],
        pool: AsyncConnectionPool,
        conninfo: str,
        application_name: str,
    ) -> None:
        self._listen = listen
        self._pool = pool
        self._conninfo = conninfo
        self._application_name = application_name
        self._channels: list[str] = []

    @classmethod
    async def connect(cls, conninfo: str, application_name: str) -> ReplicaBus:
        listen = await _listen_connection(conninfo, application_name)
        pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=POOL_SIZE,
            kwargs={"autocommit": True, "application_name": application_name + POOL_SUFFIX},
            open=False,
        )
        try:
            await pool.open()
        except BaseException:
            await listen.close()
            raise
        return cls(listen, pool, conninfo, application_name)

    async def close(self) -> None:
        await self._listen.close()
        await self._pool.close()

    async def listen(self, *channels: str) -> None:
        for channel in channels:
            await self._listen.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            if channel not in self._channels:
                self._channels.append(channel)

    async def reopen(self) -> None:
        """Replace a lost LISTEN connection: same name (so this replica is alive again to the
        others' sweeps), same channels. Notifications sent while it was gone are lost."""
        with contextlib.suppress(psycopg.Error):
            await self._listen.close()
        self._listen = await _listen_connection(self._conninfo, self._application_name)
        await self.listen(*self._channels)

    async def run(self, query: str, params: tuple[Any, ...] = ()) -> tuple[int, list[Any]]:
        """One autocommitted statement on a pooled connection: (rowcount, rows)."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(query, params)  # type: ignore[arg-type]
            rows = await cursor.fetchall() if cursor.description else []
            return cursor.rowcount, rows

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection inside one transaction, committed when the block ends (its
        NOTIFYs are delivered then), rolled back if it raises."""
        async with self._pool.connection() as conn, conn.transaction():
            yield conn

    async def notify(self, channel: str, message: BaseModel) -> None:
        text = message.model_dump_json()
        if len(text.encode()) <= NOTIFY_LIMIT_BYTES:
            await self.run("SELECT pg_notify(%s, %s)", (channel, text))
        else:
            await self.run(_SEND_BY_REF, (text, channel))

    async def messages(self, *, direct: str) -> AsyncIterator[ReplicaMessage]:
        """Every usable message, in arrival order; those sent by reference are read in. `direct`
        is this replica's own channel (its payloads are deleted once read)."""
        async for notify in self._listen.notifies():
            try:
                message = MESSAGES.validate_json(notify.payload)
                if isinstance(message, PayloadRef):
                    message = await self._fetch(message, notify.channel == direct)
            except (ValidationError, psycopg.Error):
                log.exception("unusable replica message on %s", notify.channel)
                continue
            if message is not None:
                yield message

    async def _fetch(self, ref: PayloadRef, direct: bool) -> ReplicaMessage | None:
        query = (
            "DELETE FROM replica_payloads WHERE id = %s RETURNING body"
            if direct
            else "SELECT body FROM replica_payloads WHERE id = %s"
        )
        _, rows = await self.run(query, (ref.id,))
        return MESSAGES.validate_json(rows[0][0]) if rows else None


async def _listen_connection(conninfo: str, application_name: str) -> psycopg.AsyncConnection[Any]:
    """The LISTEN connection carries `application_name`: other replicas see it alive."""
    return await psycopg.AsyncConnection.connect(
        conninfo, autocommit=True, application_name=application_name
    )
