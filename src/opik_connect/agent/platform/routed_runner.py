"""A runner as one replica sees it: each command goes to whichever replica holds the daemon now.

A command keeps its id across attempts: when the daemon moves (its replica died, it reconnected
elsewhere), the command is sent again to the new place, and the daemon, which dedupes command ids,
answers from its cache rather than run it twice.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from opik_connect.agent.platform.replica_wire import CommandMessage
from opik_connect.agent.platform.runner_api import CommandCalls
from opik_connect.agent.platform.runner_handle import parse_outcome
from opik_connect.link.frames import failed
from opik_connect.link.platform_session import DEFAULT_TIMEOUTS
from opik_connect.protocol import COMMANDS, BridgeError, CommandResult, ErrorCode, ProposalDecided

if TYPE_CHECKING:
    from opik_connect.agent.platform.replica_router import ReplicaRouter


class RoutedRunner(CommandCalls):
    """Implements agent.platform.runner_api.Runner over a ReplicaRouter."""

    def __init__(
        self, router: ReplicaRouter, runner_id: str, name: str, project: str, timeout_s: float
    ) -> None:
        self.runner_id = runner_id
        self.name = name
        self.project = project
        self._router = router
        self._timeout_s = timeout_s

    async def call(
        self, type_name: str, args: BaseModel, *, timeout_s: float | None = None
    ) -> BaseModel:
        if type_name not in COMMANDS:
            raise BridgeError(ErrorCode.UNKNOWN_TYPE, f"unknown command type {type_name!r}")
        timeout = timeout_s or DEFAULT_TIMEOUTS.get(type_name, self._timeout_s)
        payload = args.model_dump(mode="json")
        return parse_outcome(type_name, await self.command(type_name, payload, timeout))

    async def wait_decision(self, proposal_id: str) -> ProposalDecided:
        return await self._router.decision(proposal_id)

    async def command(
        self, type_name: str, payload: dict[str, Any], timeout_s: float
    ) -> CommandResult:
        """The outcome from wherever the daemon is; re-sent under the same id when it moves."""
        loop = asyncio.get_running_loop()
        command_id = uuid.uuid4().hex
        deadline = loop.time() + timeout_s
        while (remaining := deadline - loop.time()) > 0:
            moved = self._router.presence.moved(self.runner_id)
            attempt = self._attempt(command_id, type_name, payload, remaining)
            try:
                await asyncio.wait(
                    {attempt, moved}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                moved.cancel()
                if not attempt.done():
                    attempt.cancel()
                    self._router.forget(command_id)
            if attempt.done() and not attempt.cancelled():
                return attempt.result()
        return failed(ErrorCode.TIMEOUT, f"no result for {type_name} within {timeout_s:g}s")

    def _attempt(
        self, command_id: str, type_name: str, payload: dict[str, Any], remaining: float
    ) -> asyncio.Future[CommandResult]:
        target = self._router.presence.location(self.runner_id)
        if target is None:
            return asyncio.get_running_loop().create_future()  # wait until it connects somewhere
        if target == self._router.replica_id:
            handle = self._router.local(self.runner_id)
            if handle is not None:
                return asyncio.ensure_future(
                    handle.command(type_name, payload, timeout_s=remaining, command_id=command_id)
                )
        message = CommandMessage(
            id=command_id,
            reply_to=self._router.replica_id,
            runner_id=self.runner_id,
            type=type_name,
            payload=payload,
            timeout_s=remaining,
        )
        return self._router.send_command(target, message)
