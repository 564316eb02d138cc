"""Several platform replicas sharing one PostgreSQL: any runner reachable from any replica.

Each replica LISTENs on its own channel (commands and results addressed to it) and on one
broadcast channel (where runners are, agent.platform.replica_presence; the events replicas
admitted; and which session events were stored, for followers here, replica_follow). A command
for a runner on another replica goes to that replica's channel, its result comes back on ours; a
decision is admitted by the first replica to record it.

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
from collections import OrderedDict
from typing import Any

import psycopg
from pydantic import BaseModel

from opik_connect.agent.platform.replica_bus import ReplicaBus
from opik_connect.agent.platform.replica_follow import StoredSessionFollowers
from opik_connect.agent.platform.replica_pairings import PairingRelay, StorePairings
from opik_connect.agent.platform.replica_presence import ReplicaPresence
from opik_connect.agent.platform.replica_wire import (
    APPLICATION_PREFIX,
    BROADCAST_CHANNEL,
    CommandMessage,
    ConfirmedMessage,
    ConfirmMessage,
    EventMessage,
    PresenceMessage,
    ReplicaMessage,
    ResultMessage,
    SessionEventMessage,
    replica_channel,
)
from opik_connect.agent.platform.routed_runner import RoutedRunner
from opik_connect.agent.platform.runner_handle import RunnerHandle, RunnerInfo
from opik_connect.agent.platform.server import Platform
from opik_connect.agent.platform.store import PlatformStore
from opik_connect.agent.platform.store_postgres import PostgresPlatformStore
from opik_connect.link.frames import failed
from opik_connect.protocol import COMMANDS, CommandResult, ErrorCode, ProposalDecided

log = logging.getLogger(__name__)

SERVED_KEPT = 1024
"""How many outcomes of commands served for other replicas are kept to answer a re-send."""
REJOIN_FIRST_S = 0.1
REJOIN_MAX_S = 5.0
"""Reopening a lost LISTEN connection waits this long after a failed try, doubling up to max."""


class ReplicaRouter:
    """One replica's view of all runners, and its part in routing commands and events."""

    def __init__(
        self,
        platform: Platform,
        store: PlatformStore,
        bus: ReplicaBus,
        replica_id: str,
        *,
        command_timeout_s: float = 120.0,
    ) -> None:
        self.platform = platform
        self.replica_id = replica_id
        self._store = store
        self._bus = bus
        self._command_timeout_s = command_timeout_s
        self.presence = ReplicaPresence(bus, replica_id)
        self.pairing_relay = PairingRelay(bus, replica_id, platform.pairings)
        self.followers = StoredSessionFollowers(store)
        """Followers here of sessions running on any replica (/v1/sessions/{id}/stream)."""
        self._calls: dict[str, asyncio.Future[CommandResult]] = {}
        self._serving: set[str] = set()
        self._served: OrderedDict[str, CommandResult] = OrderedDict()
        """Recent outcomes of commands served here: one re-sent (its requester did not hear the
        result) is answered again; this link's session would drop the daemon's cached copy."""
        self._decisions: dict[str, list[asyncio.Future[ProposalDecided]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unwatch = lambda: None
        self._receiving: asyncio.Task[None] | None = None
        self.deaf = asyncio.Event()
        """Set while this replica does not hear the others (its LISTEN connection is gone)."""
        self.rejoined = asyncio.Event()
        """Set once this replica hears the others again after losing its LISTEN connection."""

    @classmethod
    async def start(
        cls,
        platform: Platform,
        store: PlatformStore,
        conninfo: str,
        *,
        command_timeout_s: float = 120.0,
    ) -> ReplicaRouter:
        """Connect to the store's database (already migrated: store_postgres), listen, and
        take part; before platform.start."""
        replica_id = uuid.uuid4().hex[:16]
        bus = await ReplicaBus.connect(conninfo, APPLICATION_PREFIX + replica_id)
        if isinstance(store, PostgresPlatformStore):
            store.replica_id = replica_id  # its sessions name this replica (presence sweep)
        router = cls(platform, store, bus, replica_id, command_timeout_s=command_timeout_s)
        try:
            await router._open()
        except BaseException:
            await bus.close()
            raise
        log.info("replica %s routing through PostgreSQL", replica_id, extra={"replica": replica_id})
        return router

    @property
    def _channel(self) -> str:
        return replica_channel(self.replica_id)

    @property
    def listening(self) -> bool:
        """False once the LISTEN connection is lost: this replica no longer hears the others."""
        return self._receiving is not None and not self.deaf.is_set()

    async def ready(self) -> None:
        """A readiness check (platform.ops.ready_checks): a replica that cannot hear the others
        must not take daemons, so the load balancer sends them elsewhere."""
        if not self.listening:
            raise ConnectionError("replica lost its LISTEN connection to PostgreSQL")

    async def _open(self) -> None:
        await self._bus.listen(self._channel, BROADCAST_CHANNEL)
        await self.presence.load()
        self.platform.pairings.shared = StorePairings(self._store)
        self.platform.pairings.confirm_elsewhere = self.pairing_relay.confirm_elsewhere
        self.platform.event_gate = self.admit
        self._unwatch = self.platform.watch_runners(
            lambda handle: self._spawn(self.presence.runner_changed(handle))
        )
        self._receiving = self._spawn(self._receive())
        self._spawn(self.presence.sweep_forever())

    async def aclose(self) -> None:
        self._unwatch()
        self.platform.event_gate = None
        self.platform.pairings.confirm_elsewhere = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(psycopg.Error):
            await self.presence.leave()
        await self._bus.close()

    def runners(self) -> list[RunnerInfo]:
        """Every runner connected to some replica, and those this one knows but lost."""
        infos = self.presence.infos()
        for info in self.platform.runners():
            if info.connected or info.runner_id not in infos:
                infos[info.runner_id] = info
        return list(infos.values())

    def runner(self, runner_id: str) -> RoutedRunner:
        found = self.presence.info(runner_id) or self.platform.runner(runner_id)  # or KeyError
        name, project = found.name, found.project
        return RoutedRunner(self, runner_id, name, project, self._command_timeout_s)

    def local(self, runner_id: str) -> RunnerHandle | None:
        with contextlib.suppress(KeyError):
            return self.platform.runner(runner_id)
        return None

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
            taken = await self._store.get_decision(proposal_id)
            return taken.decision if taken is not None else await future
        finally:
            waiters.remove(future)
            if not waiters:
                self._decisions.pop(proposal_id, None)

    async def admit(self, runner: RunnerHandle, type_name: str, event: BaseModel) -> bool:
        """The event gate: a decision is taken by the first replica to record it in the shared
        store (its primary key), once; the others drop their copy."""
        if isinstance(event, ProposalDecided):
            recorded = await self._store.record_decision(runner.runner_id, event)
            if not recorded.first:
                return False
        message = EventMessage(
            runner_id=runner.runner_id,
            type=type_name,
            event=event.model_dump(mode="json"),
            origin=self.replica_id,
        )
        await self._bus.notify(BROADCAST_CHANNEL, message)
        return True

    async def _receive(self) -> None:
        """Hear the others; while the LISTEN connection is lost, be deaf (not ready) and
        reopen it with bounded backoff. Results sent here meanwhile are lost: rejoining wakes
        the routed commands (presence.load), which re-send under their ids; daemons dedupe."""
        try:
            while True:
                try:
                    async for message in self._bus.messages(direct=self._channel):
                        self._dispatch(message)
                except psycopg.Error:
                    log.warning("replica %s lost its LISTEN connection", self.replica_id)
                self.deaf.set()
                await self._rejoin()
                self.deaf.clear()
                self.followers.wake_all()
                self.rejoined.set()
                log.info("replica %s is listening again", self.replica_id)
        finally:
            self.deaf.set()

    async def _rejoin(self) -> None:
        delay = REJOIN_FIRST_S
        while True:
            try:
                await self._bus.reopen()
                local = [self.local(info.runner_id) for info in self.platform.runners()]
                await self.presence.rejoin([h for h in local if h is not None and h.connected])
                return
            except (psycopg.Error, OSError) as exc:
                log.warning("replica %s cannot listen again yet: %s", self.replica_id, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, REJOIN_MAX_S)

    def _dispatch(self, message: ReplicaMessage) -> None:
        if isinstance(message, CommandMessage):
            if message.id not in self._serving:
                self._serving.add(message.id)
                self._spawn(self._serve(message))
        elif isinstance(message, ResultMessage):
            future = self._calls.pop(message.id, None)
            if future is not None and not future.done():
                future.set_result(message.outcome)
        elif isinstance(message, SessionEventMessage):
            self.followers.notified(message.session_id)
        elif isinstance(message, PresenceMessage):
            self.presence.apply(message)
        elif isinstance(message, ConfirmMessage):
            self._spawn(self.pairing_relay.on_confirm(message))
        elif isinstance(message, ConfirmedMessage):
            self.pairing_relay.on_confirmed(message)
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
            elif (outcome := self._served.get(message.id)) is None:
                outcome = await handle.command(
                    message.type,
                    message.payload,
                    timeout_s=message.timeout_s,
                    command_id=message.id,
                )
                self._served[message.id] = outcome
                while len(self._served) > SERVED_KEPT:
                    self._served.popitem(last=False)
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
