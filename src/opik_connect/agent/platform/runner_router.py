"""How the platform finds and drives runners: in this process, or through other replicas."""

from __future__ import annotations

from typing import Any, Protocol

from opik_connect.agent.platform.runner_handle import RunnerInfo


class RunnerRouter(Protocol):
    """What Ollie's sessions and the HTTP API need to list and reach runners.

    agent.platform.server.Platform is the in-process implementation (the embedded and the
    single-process platform); agent.platform.replica_router.ReplicaRouter also reaches runners
    connected to other replicas.
    """

    def runners(self) -> list[RunnerInfo]: ...

    def runner(self, runner_id: str) -> Any:
        """An agent.platform.runner_api.Runner; KeyError for a runner no replica knows."""
        ...
