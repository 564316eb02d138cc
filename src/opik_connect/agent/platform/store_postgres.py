"""The platform store on PostgreSQL, for a team's platform replicas sharing one database.

Driver: psycopg 3 (async, with psycopg_pool): one driver serves the store, the migrations
(SQLAlchemy's `postgresql+psycopg` dialect, so alembic needs no second driver) and, for
replicas, LISTEN/NOTIFY (`AsyncConnection.notifies()`). The schema is alembic's (pg_migrations/),
upgraded on open under an advisory lock so replicas starting together migrate once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from opik_connect.agent.platform.replica_wire import BROADCAST_CHANNEL, SessionEventMessage
from opik_connect.agent.platform.store_logic import SqlPlatformStore
from opik_connect.agent.platform.store_records import SessionRecord
from opik_connect.agent.platform.store_schema import StoreError
from opik_connect.agent.platform.store_sql import StoreTx

MIGRATIONS_DIR = Path(__file__).with_name("pg_migrations")
POOL_MAX_SIZE = 10
CONNECT_TIMEOUT_S = 10
NOTIFY = "SELECT pg_notify(?, ?)"
_ALEMBIC = threading.Lock()
"""alembic's command API keeps its context in module globals: one migration per process at once."""


class PostgresPlatformStore(SqlPlatformStore):
    """Open with `await PostgresPlatformStore.open("postgresql://...")`."""

    def __init__(self, url: str, pool: AsyncConnectionPool) -> None:
        self.url = url
        self._pool = pool
        self.replica_id: str | None = None
        """Set by a platform replica (replica_router): its sessions' rows name it, so a sweep
        can end them if it dies. None for a store used outside a replica."""

    @classmethod
    async def open(cls, url: str, *, max_size: int = POOL_MAX_SIZE) -> PostgresPlatformStore:
        """Migrate to the newest schema, then open the pool; StoreError if either fails."""
        return cls(url, await open_migrated_pool(url, max_size))

    async def close(self) -> None:
        await self._pool.close()

    def _session_row(self, record: SessionRecord) -> dict[str, Any]:
        row = super()._session_row(record)
        if self.replica_id is not None:
            row["replica_id"] = self.replica_id
        return row

    async def _session_event_added(self, tx: StoreTx, session_id: str, seq: int) -> None:
        """Announced in the transaction that stored it: followers on any replica
        (replica_follow) hear of it once it is readable, and of nothing that was not kept."""
        notice = SessionEventMessage(session_id=session_id, seq=seq).model_dump_json()
        await tx.execute(NOTIFY, (BROADCAST_CHANNEL, notice))

    @asynccontextmanager
    async def _transaction(self, write: bool = True) -> AsyncIterator[_PostgresTx]:
        async with self._pool.connection() as conn:
            if not write:
                yield _PostgresTx(conn)
                return
            async with conn.transaction():
                yield _PostgresTx(conn)


class _PostgresTx:
    def __init__(self, conn: psycopg.AsyncConnection[dict[str, Any]]) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self._conn.execute(_placeholders(sql), params)
        return cursor.rowcount

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = await self._conn.execute(_placeholders(sql), params)
        return await cursor.fetchall()


def _placeholders(sql: str) -> str:
    """store_sql.py's `?` as psycopg's `%s` (the shared SQL has neither in a literal)."""
    return sql.replace("?", "%s")


def upgrade_schema(url: str) -> None:
    """alembic upgrade head (blocking; alembic and SQLAlchemy are imported only here)."""
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = sqlalchemy_url(url)
    try:
        with _ALEMBIC:
            command.upgrade(config, "head")
    except CommandError as exc:
        raise StoreError(
            f"{redact_url(url)}: schema at a revision this opik-connect does not know ({exc});"
            " it was migrated by a newer opik-connect: upgrade opik-connect"
        ) from exc
    except (SQLAlchemyError, psycopg.Error) as exc:
        raise StoreError(f"cannot migrate {redact_url(url)}: {exc}") from exc


def sqlalchemy_url(url: str) -> str:
    """The same URL for SQLAlchemy's psycopg 3 dialect."""
    _, _, rest = url.partition("://")
    return f"postgresql+psycopg://{rest}"


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def open_migrated_pool(
    url: str, max_size: int, configure: Callable[[Any], Awaitable[None]] | None = None
) -> AsyncConnectionPool:
    """Migrate the database to the newest schema, then open a pool of autocommit, dict-row
    connections to it (each set up by `configure`); StoreError if either fails."""
    await asyncio.to_thread(upgrade_schema, url)
    pool = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": True, "row_factory": dict_row},
        configure=configure,
        timeout=CONNECT_TIMEOUT_S,
    )
    try:
        await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        await pool.close()
        raise StoreError(f"cannot connect to {redact_url(url)}: {exc}") from exc
    return pool
