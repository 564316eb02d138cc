"""The platform store on one SQLite file: the embedded default, nothing to install.

The file (mode 0600) lives under the state dir, so `ask` from another terminal and a later
`opik-connect` can read back what Ollie did and what the user decided. sqlite3 blocks, so each
statement runs off the loop (SqliteOffLoop); an asyncio lock keeps a transaction's statements
together, and the one connection keeps writes ordered.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from opik_connect.agent.platform.store_logic import SqlPlatformStore
from opik_connect.agent.platform.store_schema import default_store_path, open_connection
from opik_connect.agent.platform.store_sql import StoreTx
from opik_connect.agent.sqlite_off_loop import SqliteOffLoop


class SqlitePlatformStore(SqliteOffLoop, SqlPlatformStore):
    """Open with `await SqlitePlatformStore.open(path)` (default: the state dir's file)."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        super().__init__(path, conn)
        self._unit = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | None = None) -> SqlitePlatformStore:
        path = path or default_store_path()
        conn = await asyncio.to_thread(open_connection, path)
        return cls(path, conn)

    async def _session_event_added(self, tx: StoreTx, session_id: str, seq: int) -> None:
        """Nobody to tell: the one process follows its sessions in memory."""

    @asynccontextmanager
    async def _transaction(self, write: bool = True) -> AsyncIterator[_SqliteTx]:
        async with self._unit:
            if not write:
                yield _SqliteTx(self)
                return
            await self._run(self._conn.execute, "BEGIN")
            try:
                yield _SqliteTx(self)
            except BaseException:
                await self._run(self._conn.execute, "ROLLBACK")
                raise
            await self._run(self._conn.execute, "COMMIT")


class _SqliteTx:
    def __init__(self, store: SqlitePlatformStore) -> None:
        self._store = store

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        conn = self._store._conn
        return await self._store._run(lambda: conn.execute(sql, params).rowcount)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        conn = self._store._conn
        return await self._store._run(
            lambda: [dict(row) for row in conn.execute(sql, params).fetchall()]
        )
