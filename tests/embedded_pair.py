"""An in-process platform and daemon joined by the real websocket link, for tests and the demo."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from opik_connect.agent.platform.server import Platform, RunnerHandle
from opik_connect.config import ProjectConfig, load_project_config
from opik_connect.connect.daemon import Daemon
from opik_connect.connect.websocket_client import Handler


@asynccontextmanager
async def embedded_pair(
    root: Path,
    *,
    handlers: dict[str, Handler] | None = None,
    config: ProjectConfig | None = None,
    timeout_s: float = 10.0,
) -> AsyncIterator[tuple[Platform, RunnerHandle, Daemon]]:
    """Yield (platform, runner handle, daemon) once the daemon is connected and authenticated.

    handlers=None serves the sandbox's read commands for `root`; pass a dict to serve only those
    (add more later through `daemon.handlers`).
    """
    daemon = Daemon(root, config or load_project_config(root), handlers=handlers)
    async with daemon:
        await daemon.wait_connected(timeout_s)
        assert daemon.platform is not None
        runner = daemon.platform.runner(daemon.identity.runner_id)
        yield daemon.platform, runner, daemon
