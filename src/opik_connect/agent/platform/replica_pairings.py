"""Pairings in PostgreSQL, so a daemon paired through one replica is accepted by every one."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from opik_connect.link.auth import PairingRecord


class PostgresPairings:
    """agent.platform.pairing.SharedPairings over the replicas' connection."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def get(self, runner_id: str) -> PairingRecord | None:
        cursor = await self._conn.execute(
            "SELECT record FROM replica_pairings WHERE runner_id = %s", (runner_id,)
        )
        row = await cursor.fetchone()
        return None if row is None else PairingRecord.model_validate(row[0])

    async def put(self, record: PairingRecord) -> None:
        """A runner paired again replaces its old pairing (its old key stops working)."""
        await self._conn.execute(
            "INSERT INTO replica_pairings (runner_id, record) VALUES (%s, %s)"
            " ON CONFLICT (runner_id) DO UPDATE SET record = EXCLUDED.record, paired_at = now()",
            (record.runner_id, Jsonb(record.model_dump())),
        )
