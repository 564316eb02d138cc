"""Pairings in PostgreSQL, so a daemon paired through one replica is accepted by every one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from psycopg.types.json import Jsonb

from opik_connect.link.auth import PairingRecord


class PostgresPairings:
    """agent.platform.pairing.SharedPairings over the replicas' connections."""

    def __init__(self, run: Callable[[str, tuple[Any, ...]], Awaitable[tuple[int, list[Any]]]]):
        self._run = run

    async def get(self, runner_id: str) -> PairingRecord | None:
        _, rows = await self._run(
            "SELECT record FROM replica_pairings WHERE runner_id = %s", (runner_id,)
        )
        return PairingRecord.model_validate(rows[0][0]) if rows else None

    async def put(self, record: PairingRecord) -> None:
        """A runner paired again replaces its old pairing (its old key stops working)."""
        await self._run(
            "INSERT INTO replica_pairings (runner_id, record) VALUES (%s, %s)"
            " ON CONFLICT (runner_id) DO UPDATE SET record = EXCLUDED.record, paired_at = now()",
            (record.runner_id, Jsonb(record.model_dump())),
        )
