"""Several platform replicas sharing one PostgreSQL: any runner reachable from any replica.

Each replica LISTENs on its own channel (commands and results addressed to it) and on one
broadcast channel (where runners are, and the events replicas admitted). A runner's location is a
row in replica_runners, mirrored in memory from the broadcasts. A replica is alive while
PostgreSQL lists its listening connection (pg_stat_activity, by application name): a replica killed
outright loses its connection, and the next sweep forgets its runners.

    router = await ReplicaRouter.start(platform, "postgresql://...")
    sessions = OllieSessions(router, store, driver)   # router.runner(id) reaches any replica
    ...
    await router.aclose()

The embedded platform needs none of this: Platform itself is the in-process RunnerRouter
(agent.platform.runner_router), and psycopg is imported only by the replica modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from opik_connect.agent.platform.replica_bus import ReplicaBus
from opik_connect.agent.platform.replica_pairings import PostgresPairings
from opik_connect.agent.platform.replica_schema import REPLICA_TABLES, SCHEMA_LOCK
from opik_connect.agent.platform.replica_wire import (
    APPLICATION_PREFIX,
    BROADCAST_CHANNEL,
    CommandMessage,
    EventMessage,
    PresenceMessage,
    ReplicaMessage,
    ResultMessage,
    replica_channel,
)
from opik_connect.agent.platform.routed_runner import RoutedRunner
from opik_connect.agent.platform.runner_handle import RunnerHandle, RunnerInfo
from opik_connect.agent.platform.server import Platform
from opik_connect.link.frames import failed
from opik_connect.protocol import COMMANDS, CommandResult, ErrorCode, ProposalDecided

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


class ReplicaRouter:
    """One replica's view of all runners, and its part in routing commands and events."""

    def __init__(
        self,
        platform: Platform,
        bus: ReplicaBus,
        replica_id: str,
        *,
        command_timeout_s: float = 120.0,
    ) -> None:
        self.platform = platform
        self.replica_id = replica_id
        self._bus = bus
        self._command_timeout_s = command_timeout_s
        self._where: dict[str, tuple[str, RunnerInfo]] = {}
        self._moves: dict[str, list[asyncio.Future[None]]] = {}
        self._calls: dict[str, asyncio.Future[CommandResult]] = {}
        self._serving: set[str] = set()
        self._decisions: dict[str, list[asyncio.Future[ProposalDecided]]] = {}
        self._presence_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unwatch = lambda: None
        self._receiving: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, platform: Platform, conninfo: str, *, command_timeout_s: float = 120.0
    ) -> ReplicaRouter:
        """Connect, create the tables if needed, listen, and take part (before platform.start)."""
        replica_id = uuid.uuid4().hex[:16]
        bus = await ReplicaBus.connect(conninfo, APPLICATION_PREFIX + replica_id)
        router = cls(platform, bus, replica_id, command_timeout_s=command_timeout_s)
        try:
            await router._open()
        except BaseException:
            await bus.close()
            raise
        return router

    @property
    def listening(self) -> bool:
        """False once the LISTEN connection is lost: this replica no longer hears the others
        (a readiness check should fail, so the load balancer sends daemons elsewhere)."""
        return self._receiving is not None and not self._receiving.done()

    async def _open(self) -> None:
        await self._bus.run_locked(SCHEMA_LOCK, REPLICA_TABLES)
        await self._bus.listen(replica_channel(self.replica_id), BROADCAST_CHANNEL)
        await self.sweep()
        _, rows = await self._bus.run("SELECT runner_id, replica_id, info FROM replica_runners")
        for runner_id, replica_id, info in rows:
            self._where[runner_id] = (replica_id, RunnerInfo.model_validate(info))
        self.platform.pairings.shared = PostgresPairings(self._bus.run)
        self.platform.event_gate = self.admit
        self._unwatch = self.platform.watch_runners(
            lambda handle: self._spawn(self._runner_changed(handle))
        )
        self._receiving = self._spawn(self._receive())
        self._spawn(self._sweep_forever())

    async def aclose(self) -> None:
        self._unwatch()
        self.platform.event_gate = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(psycopg.Error):
            _, rows = await self._bus.run(
                "DELETE FROM replica_runners WHERE replica_id = %s RETURNING runner_id",
                (self.replica_id,),
            )
            for (runner_id,) in rows:
                gone = PresenceMessage(runner_id=runner_id, replica_id=self.replica_id, info=None)
                await self._bus.notify(BROADCAST_CHANNEL, gone)
        await self._bus.close()

    def runners(self) -> list[RunnerInfo]:
        """Every runner connected to some replica, and those this one knows but lost."""
        infos = {runner_id: info for runner_id, (_, info) in self._where.items()}
        for info in self.platform.runners():
            if info.connected or info.runner_id not in infos:
                infos[info.runner_id] = info
        return list(infos.values())

    def runner(self, runner_id: str) -> RoutedRunner:
        found = self._where.get(runner_id)
        if found is None:
            handle = self.platform.runner(runner_id)  # KeyError, as Platform.runner
            name, project = handle.name, handle.project
        else:
            name, project = found[1].name, found[1].project
        return RoutedRunner(self, runner_id, name, project, self._command_timeout_s)

    def location(self, runner_id: str) -> str | None:
        """The replica the runner is connected to, as last broadcast."""
        found = self._where.get(runner_id)
        return found[0] if found else None

    def local(self, runner_id: str) -> RunnerHandle | None:
        with contextlib.suppress(KeyError):
            return self.platform.runner(runner_id)
        return None

    def moved(self, runner_id: str) -> asyncio.Future[None]:
        """Resolves at the runner's next connect or disconnect, wherever it happens."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = [other for other in self._moves.get(runner_id, []) if not other.done()]
        self._moves[runner_id] = [*waiting, future]  # callers cancel theirs: keep only live ones
        return future

    def send_command(self, target: str, message: CommandMessage) -> asyncio.Future[CommandResult]:
        """Ask replica `target` to run the command; the future resolves with its result."""
        future = self._calls.get(message.id)
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            self._calls[message.id] = future
        self._spawn(self._send(target, message, future))
        return future

    async def _send(
        self, target: str, message: CommandMessage, future: asyncio.Future[CommandResult]
    ) -> None:
        try:
            await self._bus.notify(replica_channel(target), message)
        except psycopg.Error as exc:
            if not future.done():
                future.set_result(failed(ErrorCode.INTERNAL, f"cannot reach replica: {exc}"))

    def forget(self, command_id: str) -> None:
        self._calls.pop(command_id, None)

    async def decision(self, proposal_id: str) -> ProposalDecided:
        """The proposal's decision, taken on whichever replica its daemon was connected to."""
        future: asyncio.Future[ProposalDecided] = asyncio.get_running_loop().create_future()
        waiters = self._decisions.setdefault(proposal_id, [])
        waiters.append(future)
        try:
            _, rows = await self._bus.run(
                "SELECT data FROM replica_decisions WHERE proposal_id = %s", (proposal_id,)
            )
            if rows:
                return ProposalDecided.model_validate(rows[0][0])
            return await future
        finally:
            waiters.remove(future)
            if not waiters:
                self._decisions.pop(proposal_id, None)

    async def admit(self, runner: RunnerHandle, type_name: str, event: BaseModel) -> bool:
        """The event gate: a decision is taken by the first replica to record it, once."""
        if isinstance(event, ProposalDecided):
            taken, _ = await self._bus.run(
                "INSERT INTO replica_decisions (proposal_id, runner_id, replica_id, data)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (proposal_id) DO NOTHING",
                (
                    event.proposal_id,
                    runner.runner_id,
                    self.replica_id,
                    Jsonb(event.model_dump(mode="json")),
                ),
            )
            if taken == 0:
                return False
        message = EventMessage(
            runner_id=runner.runner_id,
            type=type_name,
            event=event.model_dump(mode="json"),
            origin=self.replica_id,
        )
        await self._bus.notify(BROADCAST_CHANNEL, message)
        return True

    async def sweep(self) -> None:
        """Forget the runners of replicas that are gone, and old broadcast payloads."""
        _, rows = await self._bus.run(_SWEEP, (APPLICATION_PREFIX,))
        for runner_id, replica_id in rows:
            gone = PresenceMessage(runner_id=runner_id, replica_id=replica_id, info=None)
            await self._bus.notify(BROADCAST_CHANNEL, gone)
        await self._bus.run(
            f"DELETE FROM replica_payloads WHERE created_at < now() - interval '{PAYLOAD_TTL}'"
        )

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                await self.sweep()
            except psycopg.Error:
                log.exception("replica sweep failed")

    async def _runner_changed(self, handle: RunnerHandle) -> None:
        """Publish where the runner is, as it is when this runs (so changes apply in order)."""
        async with self._presence_lock:
            if handle.connected:
                info = handle.info()
                await self._bus.run(
                    _UPSERT_RUNNER,
                    (handle.runner_id, self.replica_id, Jsonb(info.model_dump(mode="json"))),
                )
            else:
                info = None
                deleted, _ = await self._bus.run(
                    "DELETE FROM replica_runners WHERE runner_id = %s AND replica_id = %s",
                    (handle.runner_id, self.replica_id),
                )
                if deleted == 0:
                    return  # it is connected elsewhere by now
            presence = PresenceMessage(
                runner_id=handle.runner_id, replica_id=self.replica_id, info=info
            )
            await self._bus.notify(BROADCAST_CHANNEL, presence)

    async def _receive(self) -> None:
        async for message in self._bus.messages(direct=replica_channel(self.replica_id)):
            self._dispatch(message)

    def _dispatch(self, message: ReplicaMessage) -> None:
        if isinstance(message, CommandMessage):
            if message.id not in self._serving:
                self._serving.add(message.id)
                self._spawn(self._serve(message))
        elif isinstance(message, ResultMessage):
            future = self._calls.pop(message.id, None)
            if future is not None and not future.done():
                future.set_result(message.outcome)
        elif isinstance(message, PresenceMessage):
            if message.info is not None:
                self._where[message.runner_id] = (message.replica_id, message.info)
            elif self.location(message.runner_id) == message.replica_id:
                del self._where[message.runner_id]
            for future in self._moves.pop(message.runner_id, []):
                if not future.done():
                    future.set_result(None)
        elif isinstance(message, EventMessage) and message.type == "ProposalDecided":
            decided = ProposalDecided.model_validate(message.event)
            for future in self._decisions.get(decided.proposal_id, []):
                if not future.done():
                    future.set_result(decided)

    async def _serve(self, message: CommandMessage) -> None:
        """Run a command another replica routed here; the daemon dedupes its id."""
        try:
            handle = self.local(message.runner_id)
            if message.type not in COMMANDS:
                outcome = failed(ErrorCode.UNKNOWN_TYPE, f"unknown command type {message.type!r}")
            elif handle is None:
                outcome = failed(
                    ErrorCode.RUNNER_NOT_FOUND, f"runner {message.runner_id} is not here"
                )
            else:
                outcome = await handle.command(
                    message.type,
                    message.payload,
                    timeout_s=message.timeout_s,
                    command_id=message.id,
                )
            result = ResultMessage(id=message.id, outcome=outcome)
            await self._bus.notify(replica_channel(message.reply_to), result)
        finally:
            self._serving.discard(message.id)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("replica task failed", exc_info=task.exception())
