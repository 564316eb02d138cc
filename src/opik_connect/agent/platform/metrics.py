"""Prometheus metrics for one platform process: daemons, commands, sessions, tokens, decisions.

Only the standalone platform imports this module (inside `opik-connect platform`), so
prometheus_client loads there and not on `opik-connect --help`. The registry is the platform's
own, never the process-wide default, so two platforms in one process do not mix their counts.
Labels stay bounded: command types, error codes, session statuses, model ids and decision kinds;
never runner, session or proposal ids (those are in the logs).
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel

from opik_connect.agent.platform.activity import CommandDone, SessionChange
from opik_connect.agent.platform.server import Platform, RunnerHandle
from opik_connect.protocol import ProposalDecided

PREFIX = "opik_connect"
COMMAND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)
"""Seconds: a loopback ReadFile takes about a millisecond, a suite run minutes."""


class PlatformMetrics:
    """Mount with `PlatformMetrics(platform)` before it serves; /metrics then renders these."""

    def __init__(self, platform: Platform) -> None:
        self.registry = registry = CollectorRegistry()
        activity = platform.activity
        Gauge(
            f"{PREFIX}_runners_connected", "Daemons connected to this process.", registry=registry
        ).set_function(lambda: sum(1 for info in platform.runners() if info.connected))
        Gauge(
            f"{PREFIX}_commands_in_flight",
            "Commands sent to daemons from this process and not answered yet.",
            registry=registry,
        ).set_function(lambda: activity.commands_in_flight)
        Gauge(
            f"{PREFIX}_sessions_active",
            "Ollie sessions running in this process.",
            registry=registry,
        ).set_function(lambda: activity.sessions_running)
        Gauge(
            f"{PREFIX}_draining", "1 while this process drains (SIGTERM).", registry=registry
        ).set_function(lambda: float(platform.draining))
        self.command_seconds = Histogram(
            f"{PREFIX}_command_duration_seconds",
            "From sending a command to its result, by command type and outcome (ok or the code).",
            ["command", "outcome"],
            buckets=COMMAND_BUCKETS,
            registry=registry,
        )
        self.sessions = Counter(f"{PREFIX}_sessions", "Ollie sessions started.", registry=registry)
        self.sessions_finished = Counter(
            f"{PREFIX}_sessions_finished",
            "Ollie sessions ended, by status.",
            ["status"],
            registry=registry,
        )
        self.tokens = Counter(
            f"{PREFIX}_model_tokens",
            "Model tokens used by finished sessions, by model and kind "
            "(input, output, cache_creation_input, cache_read_input).",
            ["model", "kind"],
            registry=registry,
        )
        self.cost = Counter(
            f"{PREFIX}_model_cost_usd",
            "Estimated model spend of finished sessions in USD (built-in price table; models it "
            "does not list add nothing).",
            ["model"],
            registry=registry,
        )
        self.decisions = Counter(
            f"{PREFIX}_decisions",
            "Proposals decided in a daemon's terminal, by decision.",
            ["decision"],
            registry=registry,
        )
        activity.on_command.append(self._command)
        activity.on_session.append(self._session)
        platform.subscribe(self._event)
        platform.ops.metrics = self.render

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def _command(self, done: CommandDone) -> None:
        self.command_seconds.labels(done.type_name, done.outcome).observe(done.seconds)

    def _session(self, change: SessionChange) -> None:
        if not change.finished:
            self.sessions.inc()
            return
        self.sessions_finished.labels(change.status).inc()
        model = change.model or "unknown"
        for key, count in (change.usage or {}).items():
            if count:
                self.tokens.labels(model, key.removesuffix("_tokens")).inc(count)
        if change.cost_usd:
            self.cost.labels(model).inc(change.cost_usd)

    def _event(self, runner: RunnerHandle, type_name: str, event: BaseModel) -> None:
        if isinstance(event, ProposalDecided):
            self.decisions.labels(event.decision).inc()
