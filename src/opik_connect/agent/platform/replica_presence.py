"""Where each runner is connected: a row per runner in PostgreSQL, mirrored by every replica.

A replica publishes its own runners' connects and disconnects (the row, then a broadcast) and
applies everyone's broadcasts to its mirror. A replica is alive while PostgreSQL lists its
listening connection (pg_stat_activity, by application name): one killed outright loses that
connection, and the next sweep, on any replica, forgets its runners.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from psycopg.types.json import Jsonb

from opik_connect.agent.platform.replica_bus import ReplicaBus
from opik_connect.agent.platform.replica_lost_sessions import end_lost_sessions
from opik_connect.agent.platform.replica_wire import (
    APPLICATION_PREFIX,
    BROADCAST_CHANNEL,
    PresenceMessage,
)
from opik_connect.agent.platform.runner_handle import RunnerHandle, RunnerInfo

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 5.0
"""How often a replica forgets the runners of replicas PostgreSQL no longer lists."""
PAYLOAD_TTL = "10 minutes"
"""Broadcast payload rows are read by every replica, so a sweep deletes them once this old."""

_SWEEP = """
DELETE FROM replica_runners r WHERE NOT EXISTS (
    SELECT 1 FROM pg_stat_activity a WHERE a.application_name = %s || r.replica_id
) RETURNING runner_id, replica_id
"""
_UPSERT_RUNNER = """
INSERT INTO replica_runners (runner_id, replica_id, info) VALUES (%s, %s, %s)
ON CONFLICT (runner_id) DO UPDATE
SET replica_id = EXCLUDED.replica_id, info = EXCLUDED.info, updated_at = now()
"""


class ReplicaPresence:
    """This replica's mirror of replica_runners, and its part in keeping the table true."""

    def __init__(self, bus: ReplicaBus, replica_id: str) -> None:
        self._bus = bus
        self._replica_id = replica_id
        self._where: dict[str, tuple[str, RunnerInfo]] = {}
        self._moves: dict[str, list[asyncio.Future[None]]] = {}
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        """Sweep, then mirror the table (call after LISTEN, so no change falls in between)."""
        await self.sweep()
        _, rows = await self._bus.run("SELECT runner_id, replica_id, info FROM replica_runners")
        self._where = {
            runner_id: (replica_id, RunnerInfo.model_validate(info))
            for runner_id, replica_id, info in rows
        }
        for futures in self._moves.values():  # broadcasts were missed: let waiters look again
            for future in futures:
                if not future.done():
                    future.set_result(None)
        self._moves.clear()

    async def rejoin(self, handles: list[RunnerHandle]) -> None:
        """After a lost LISTEN connection (call once LISTENing again): the others' sweeps may
        have forgotten this replica's runners, and their broadcasts since were missed."""
        for handle in handles:
            await self.runner_changed(handle)
        await self.load()

    def infos(self) -> dict[str, RunnerInfo]:
        return {runner_id: info for runner_id, (_, info) in self._where.items()}

    def info(self, runner_id: str) -> RunnerInfo | None:
        found = self._where.get(runner_id)
        return found[1] if found else None

    def location(self, runner_id: str) -> str | None:
        """The replica the runner is connected to, as last broadcast."""
        found = self._where.get(runner_id)
        return found[0] if found else None

    def moved(self, runner_id: str) -> asyncio.Future[None]:
        """Resolves at the runner's next connect or disconnect, wherever it happens."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = [other for other in self._moves.get(runner_id, []) if not other.done()]
        self._moves[runner_id] = [*waiting, future]  # callers cancel theirs: keep only live ones
        return future

    def apply(self, message: PresenceMessage) -> None:
        """A broadcast from any replica (this one included)."""
        if message.info is not None:
            self._where[message.runner_id] = (message.replica_id, message.info)
        elif self.location(message.runner_id) == message.replica_id:
            del self._where[message.runner_id]
        for future in self._moves.pop(message.runner_id, []):
            if not future.done():
                future.set_result(None)

    async def runner_changed(self, handle: RunnerHandle) -> None:
        """Publish where a local runner is, as it is when this runs (so changes apply in order)."""
        async with self._lock:
            if handle.connected:
                info = handle.info()
                await self._bus.run(
                    _UPSERT_RUNNER,
                    (handle.runner_id, self._replica_id, Jsonb(info.model_dump(mode="json"))),
                )
            else:
                info = None
                deleted, _ = await self._bus.run(
                    "DELETE FROM replica_runners WHERE runner_id = %s AND replica_id = %s",
                    (handle.runner_id, self._replica_id),
                )
                if deleted == 0:
                    return  # it is connected elsewhere by now
            presence = PresenceMessage(
                runner_id=handle.runner_id, replica_id=self._replica_id, info=info
            )
            await self._bus.notify(BROADCAST_CHANNEL, presence)

    async def leave(self) -> None:
        """This replica closes: its runners are no longer here."""
        _, rows = await self._bus.run(
            "DELETE FROM replica_runners WHERE replica_id = %s RETURNING runner_id",
            (self._replica_id,),
        )
        for (runner_id,) in rows:
            gone = PresenceMessage(runner_id=runner_id, replica_id=self._replica_id, info=None)
            await self._bus.notify(BROADCAST_CHANNEL, gone)

    async def sweep(self) -> None:
        """Forget the runners of replicas that are gone, end the sessions of replicas whose
        process is gone (no connection of theirs is listed; replica_lost_sessions), and drop
        old broadcast payloads."""
        _, rows = await self._bus.run(_SWEEP, (APPLICATION_PREFIX,))
        for runner_id, replica_id in rows:
            gone = PresenceMessage(runner_id=runner_id, replica_id=replica_id, info=None)
            await self._bus.notify(BROADCAST_CHANNEL, gone)
        await end_lost_sessions(self._bus)
        await self._bus.run(
            f"DELETE FROM replica_payloads WHERE created_at < now() - interval '{PAYLOAD_TTL}'"
        )

    async def sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                await self.sweep()
            except psycopg.Error:
                log.exception("replica sweep failed")
