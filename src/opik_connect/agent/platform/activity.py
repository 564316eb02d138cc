"""What a platform is doing right now: commands in flight and sessions running.

One place counts them, so draining can wait until both are zero and /metrics and the logs see
every command and session end the same way. Observers are plain callbacks (metrics, tests).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class CommandDone:
    """One command's end, as seen from the platform (sent to a daemon, answered or not)."""

    runner_id: str
    type_name: str
    command_id: str
    seconds: float
    outcome: str
    """'ok', the daemon's error code (or 'timeout'), 'cancelled' when the caller stopped waiting,
    'internal' when it could not be sent."""


@dataclass(frozen=True)
class SessionChange:
    """A session was accepted (finished=False) or ended (finished=True, with its status)."""

    session_id: str
    runner_id: str | None
    finished: bool
    status: str = "running"
    model: str | None = None
    usage: dict[str, int] | None = None
    cost_usd: float | None = None


class Activity:
    """Counts of work in progress, and an idle signal for draining."""

    def __init__(self) -> None:
        self.commands_in_flight = 0
        self.sessions_running = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.on_command: list[Callable[[CommandDone], None]] = []
        self.on_session: list[Callable[[SessionChange], None]] = []

    def command_started(self) -> None:
        self.commands_in_flight += 1
        self._idle.clear()

    def command_finished(self, done: CommandDone) -> None:
        self.commands_in_flight -= 1
        self._notify(self.on_command, done)
        self._check_idle()

    def session_changed(self, change: SessionChange) -> None:
        self.sessions_running += -1 if change.finished else 1
        if not change.finished:
            self._idle.clear()
        self._notify(self.on_session, change)
        self._check_idle()

    def counts(self) -> dict[str, int]:
        return {
            "commands_in_flight": self.commands_in_flight,
            "sessions_running": self.sessions_running,
        }

    @property
    def idle(self) -> bool:
        return self.commands_in_flight == 0 and self.sessions_running == 0

    async def wait_idle(self) -> None:
        """Returns once no command is in flight and no session runs."""
        while not self.idle:
            await self._idle.wait()

    def _check_idle(self) -> None:
        if self.idle:
            self._idle.set()

    @staticmethod
    def _notify(observers: list[Callable[[T], None]], value: T) -> None:
        for observer in observers:
            try:
                observer(value)
            except Exception:
                log.exception("activity observer failed")
