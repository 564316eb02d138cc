"""Everything the platform serves besides the daemon link, mounted on one Platform.

    services = PlatformServices(driver=...)
    daemon = Daemon(root, config, platform_setup=services.setup)   # embedded platform
    ...
    await services.aclose()                                        # after the daemon stopped

`setup` opens the store, records every daemon event in it, starts the session manager and mounts
the HTTP API (token = the platform's operator token, which the daemon writes to its run file).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import BaseModel

from opik_connect.agent.ollie_sessions import OllieSessions, SessionDriver
from opik_connect.agent.platform_http_api import PlatformHttpApi
from opik_connect.agent.platform_server import Platform, RunnerHandle
from opik_connect.agent.platform_store import PlatformStore


class PlatformServices:
    """Store + sessions + HTTP API for one Platform; `setup` it before the platform starts."""

    def __init__(
        self,
        driver: SessionDriver,
        *,
        store_path: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._driver = driver
        self._store_path = store_path
        self._env = env
        self.store: PlatformStore | None = None
        self.sessions: OllieSessions | None = None
        self.http_api: PlatformHttpApi | None = None
        self._unsubscribe: Callable[[], None] | None = None

    async def setup(self, platform: Platform) -> None:
        self.store = await PlatformStore.open(self._store_path)
        store = self.store

        def record(runner: RunnerHandle, type_name: str, event: BaseModel):
            return store.record_event(runner.runner_id, event)

        self._unsubscribe = platform.subscribe(record)
        self.sessions = OllieSessions(platform, store, self._driver, env=self._env)
        self.http_api = PlatformHttpApi(
            token=platform.operator_token,
            store=store,
            sessions=self.sessions,
            runners=platform.runners,
        )
        platform.http_api = self.http_api

    async def aclose(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.sessions is not None:
            await self.sessions.aclose()
        if self.store is not None:
            await self.store.close()
            self.store = None
