"""A paired daemon as Ollie sees it: typed commands over the runner's link session."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from opik_connect.agent.platform.activity import Activity, CommandDone
from opik_connect.agent.platform.runner_api import CommandCalls
from opik_connect.link.auth import FrameSigner
from opik_connect.link.caches import BoundedIds
from opik_connect.link.driver import SessionDriver
from opik_connect.link.frames import parse_model
from opik_connect.link.platform_session import CommandFinished, EventReceived, PlatformSession
from opik_connect.link.session import LinkEvent
from opik_connect.protocol import (
    COMMANDS,
    BridgeError,
    CommandResult,
    ErrorCode,
    Hello,
    ProposalDecided,
    RootSummary,
)

log = logging.getLogger(__name__)

Publish = Callable[["RunnerHandle", str, BaseModel], "asyncio.Future[bool] | None"]
"""Hands an event to the platform; a future when it is admitted later (True once kept)."""


def parse_outcome(type_name: str, outcome: CommandResult) -> BaseModel:
    """A command's result model, or its BridgeError with the daemon's code."""
    if not outcome.ok:
        assert outcome.error is not None
        raise BridgeError.from_body(outcome.error)
    spec = COMMANDS.get(type_name)
    assert spec is not None
    return parse_model(spec[1], outcome.result or {}, ErrorCode.INTERNAL)


class RunnerInfo(BaseModel):
    """One row of the runner registry."""

    runner_id: str
    name: str
    project: str
    connected: bool
    connected_since: float | None
    last_heartbeat: float | None
    root: RootSummary | None


class RunnerHandle(CommandCalls):
    """A paired daemon (implements agent.platform.runner_api.Runner).

    It outlives connections: its session keeps the commands in flight, which are sent again
    when the daemon reconnects; the first result for a command id is the only one delivered.
    """

    def __init__(
        self,
        runner_id: str,
        name: str,
        project: str,
        timeout_s: float,
        *,
        seen_events: BoundedIds | None = None,
        publish: Publish | None = None,
        activity: Activity | None = None,
    ) -> None:
        self.runner_id = runner_id
        self.name = name
        self.project = project
        self.root: RootSummary | None = None
        self.session = PlatformSession(command_timeout_s=timeout_s, seen_events=seen_events)
        self._driver = SessionDriver(self.session, self._on_event)
        self._publish = publish
        self._activity = activity or Activity()
        self._results: dict[str, asyncio.Future[CommandResult]] = {}
        self._decision_waiters: dict[str, list[asyncio.Future[ProposalDecided]]] = {}
        self._connected = asyncio.Event()

    async def wait_decision(self, proposal_id: str) -> ProposalDecided:
        """Resolves on the daemon's ProposalDecided event; bound it with asyncio.timeout."""
        if proposal_id in self.session.decisions:
            return self.session.decisions[proposal_id]
        future: asyncio.Future[ProposalDecided] = asyncio.get_running_loop().create_future()
        self._decision_waiters.setdefault(proposal_id, []).append(future)
        return await future

    async def call(
        self, type_name: str, args: BaseModel, *, timeout_s: float | None = None
    ) -> BaseModel:
        """Send one command and await its result; BridgeError carries the daemon's code."""
        if type_name not in COMMANDS:
            raise BridgeError(ErrorCode.UNKNOWN_TYPE, f"unknown command type {type_name!r}")
        payload = args.__pydantic_serializer__.to_python(args, mode="json")  # model_dump's core
        return await self.call_raw(type_name, payload, timeout_s=timeout_s)

    async def call_raw(
        self, type_name: str, payload: dict, *, timeout_s: float | None = None
    ) -> BaseModel:
        """Like call() but with an unchecked payload: lets tests send what a bad peer would."""
        return parse_outcome(type_name, await self.command(type_name, payload, timeout_s=timeout_s))

    async def command(
        self,
        type_name: str,
        payload: dict,
        *,
        timeout_s: float | None = None,
        command_id: str | None = None,
    ) -> CommandResult:
        """The daemon's raw outcome. A command id given again (a replica re-routing a command
        after a failover) is answered by the daemon from its cache, never run twice."""
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        now = self._driver.clock()
        command_id = self.session.call(
            type_name, payload, now, timeout_s=timeout_s, command_id=command_id
        )
        self._results[command_id] = future
        self._activity.command_started()
        started, result = time.perf_counter(), str(ErrorCode.INTERNAL)
        try:
            await self._driver.send_now()
            outcome = await future
            result = "ok" if outcome.ok or outcome.error is None else str(outcome.error.code)
            return outcome
        except asyncio.CancelledError:
            result = "cancelled"
            raise
        finally:
            self._results.pop(command_id, None)
            self.session.forget(command_id)
            if self.session.has_data_to_send:  # a frame the cancelled send_now left behind
                self._driver.changed()
            seconds = time.perf_counter() - started
            self._finished(CommandDone(self.runner_id, type_name, command_id, seconds, result))

    def _finished(self, done: CommandDone) -> None:
        if log.isEnabledFor(logging.INFO):  # the fields are not built for nobody
            log.info(
                "command %s %s in %.3fs",
                done.type_name,
                done.outcome,
                done.seconds,
                extra={
                    "command_id": done.command_id,
                    "runner_id": done.runner_id,
                    "command": done.type_name,
                    "outcome": done.outcome,
                    "seconds": round(done.seconds, 6),
                },
            )
        self._activity.command_finished(done)

    @property
    def connected(self) -> bool:
        return self._driver.ws is not None

    @property
    def connected_since(self) -> float | None:
        return self.session.connected_since

    @property
    def last_heartbeat(self) -> float | None:
        return self.session.last_heartbeat

    async def wait_connected(self) -> None:
        await self._connected.wait()

    def info(self) -> RunnerInfo:
        return RunnerInfo(
            runner_id=self.runner_id,
            name=self.name,
            project=self.project,
            connected=self.connected,
            connected_since=self.connected_since,
            last_heartbeat=self.last_heartbeat,
            root=self.root,
        )

    async def attach(self, ws: ServerConnection, signer: FrameSigner, hello: Hello) -> None:
        """A new authenticated connection replaces the old one; pending commands go out."""
        old = self._driver.ws
        self.name, self.project, self.root = hello.runner_name, hello.project, hello.root
        self.session.connect(signer, self._driver.clock())
        self._driver.attach(ws)
        self._connected.set()
        if old is not None:
            await old.close(1000, "superseded by a new connection")
        self._driver.changed()

    async def serve(self, ws: ServerConnection) -> None:
        await self._driver.serve(ws)

    def detach(self, ws: ServerConnection) -> bool:
        """False if a newer connection already replaced this one."""
        if self._driver.ws is not ws:
            return False
        self._driver.detach()
        self._connected.clear()
        return True

    def _on_event(self, event: LinkEvent) -> None:
        if isinstance(event, CommandFinished):
            future = self._results.get(event.command_id)
            if future is not None and not future.done():
                future.set_result(event.outcome)
        elif isinstance(event, EventReceived):
            if isinstance(event.event, ProposalDecided):
                for future in self._decision_waiters.pop(event.event.proposal_id, []):
                    if not future.done():
                        future.set_result(event.event)
            kept = self._publish(self, event.type_name, event.event) if self._publish else None
            if event.held_ack:
                self._settle_after(kept, event)

    def _settle_after(self, kept: asyncio.Future[bool] | None, event: EventReceived) -> None:
        """Ack a held decision once the platform kept it (now, if nothing gates it)."""
        assert isinstance(event.event, ProposalDecided)
        decided, event_id = event.event, event.held_ack

        def settle(future: asyncio.Future[bool] | None) -> None:
            ok = future is None or (not future.cancelled() and future.result())
            self.session.settle_decision(event_id, decided, ok, self._driver.clock())
            self._driver.changed()

        if kept is None:
            settle(None)
        else:
            kept.add_done_callback(settle)
