"""Link sessions joined in memory for the sans-I/O tests.

Link sessions joined in memory for the sans-I/O tests: a fake clock, a wire that moves frames
only when pumped (and can lose them), and the daemon's part played by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opik_connect.link.auth import FrameSigner, derive_link_key, new_activation_key
from opik_connect.link.daemon_session import DaemonSession, RunCommand
from opik_connect.link.platform_session import ACK_DELAY_S, CommandFinished, PlatformSession
from opik_connect.link.session import LinkEvent
from opik_connect.protocol import Frame

KEY = derive_link_key(new_activation_key(), "session")
Lose = Callable[[Frame], bool]


@dataclass
class FakeClock:
    now: float = 1_000.0

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def never(frame: Frame) -> bool:
    return False


@dataclass
class Wire:
    """A daemon session and a platform session on one in-memory connection at a time."""

    daemon: DaemonSession = field(default_factory=DaemonSession)
    platform: PlatformSession = field(
        default_factory=lambda: PlatformSession(command_timeout_s=120.0)
    )
    clock: FakeClock = field(default_factory=FakeClock)
    heartbeat_interval_s: float = 10.0
    from_daemon: list[LinkEvent] = field(default_factory=list)
    from_platform: list[LinkEvent] = field(default_factory=list)
    to_platform: list[Frame] = field(default_factory=list)
    to_daemon: list[Frame] = field(default_factory=list)
    connections: int = 0
    _watch: tuple[FrameSigner, FrameSigner] | None = None

    def connect(self) -> None:
        """A new authenticated connection: both sides get signers for a fresh connection id."""
        self.connections += 1
        conn_id = f"daemon{self.connections}.platform{self.connections}"
        self.daemon.connect(FrameSigner(KEY, conn_id), self.heartbeat_interval_s, self.clock.now)
        self.platform.connect(FrameSigner(KEY, conn_id), self.clock.now)
        # Readers that decode what crosses the wire, for the tests to look at.
        self._watch = (FrameSigner(KEY, conn_id), FrameSigner(KEY, conn_id))

    def drop(self) -> None:
        """The connection is gone: whatever was not moved yet is lost with it."""
        self.daemon.data_to_send()
        self.platform.data_to_send()
        self.daemon.disconnect()
        self.platform.disconnect()
        self._watch = None

    def restart_daemon(self, **options: Any) -> None:
        """The daemon process restarted: a session with no memory of the old one."""
        self.drop()
        self.daemon = DaemonSession(**options)

    def pump(self, *, lose_to_platform: Lose = never, lose_to_daemon: Lose = never) -> None:
        """Move frames both ways until neither side has anything to send."""
        while self.daemon.has_data_to_send or self.platform.has_data_to_send:
            for text in self.daemon.data_to_send():
                frame = self._read(text, 0)
                self.to_platform.append(frame)
                if not lose_to_platform(frame):
                    self.platform.receive(text, self.clock.now)
            for text in self.platform.data_to_send():
                frame = self._read(text, 1)
                self.to_daemon.append(frame)
                if not lose_to_daemon(frame):
                    self.daemon.receive(text, self.clock.now)
            self._collect()
        self._collect()

    def tick(self, seconds: float, **lose: Lose) -> None:
        """Let time pass: both sessions act on their deadlines, then frames move."""
        now = self.clock.advance(seconds)
        self.daemon.tick(now)
        self.platform.tick(now)
        self.pump(**lose)

    def settle(self, **lose: Lose) -> None:
        """Pump, then let the platform's batched acks go out."""
        self.pump(**lose)
        self.tick(ACK_DELAY_S, **lose)

    def run_commands(self, result: Callable[[RunCommand], dict[str, Any]] | None = None) -> None:
        """Play the daemon's handlers: every command asked for is started and answered."""
        for event in self.commands_to_run():
            self.daemon.command_started(event.command_id, self.clock.now)
            answer = result(event) if result else ok_result({"content": event.payload["path"]})
            self.daemon.command_done(event.command_id, answer)

    def commands_to_run(self) -> list[RunCommand]:
        events = [e for e in self.from_daemon if isinstance(e, RunCommand)]
        self.from_daemon = [e for e in self.from_daemon if not isinstance(e, RunCommand)]
        return events

    def finished(self) -> list[CommandFinished]:
        return [e for e in self.from_platform if isinstance(e, CommandFinished)]

    def _read(self, text: str, side: int) -> Frame:
        assert self._watch is not None, "nothing crosses a dropped connection"
        return self._watch[side].open(text)

    def _collect(self) -> None:
        self.from_daemon.extend(self.daemon.events())
        self.from_platform.extend(self.platform.events())


def ok_result(result: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "result": result, "error": None}


def read_file(path: str) -> dict[str, Any]:
    return {"path": path, "offset": 0, "limit": 2000}
