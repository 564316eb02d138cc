"""The daemon as one object: the link, its command handlers, its event sender, its services.

This module only assembles. Features plug in as parts, `async def part(daemon) -> None`, passed
as `Daemon(parts=[...])` and run at start before the link connects; a part uses these hooks:
- `daemon.handlers[type_name] = async handler(args_model) -> result_model` (a command it serves);
- `await daemon.send_event(type_name, model)` (an event, buffered until the platform acks it;
  `wait_ack=True` returns only after the Ack, `event_id=` makes re-sends idempotent);
- `daemon.add_service(factory)` (a background task run while the daemon runs);
- `daemon.add_closer(async fn)` (run at the end of stop(), after the platform stopped);
- `daemon.file_listeners.append(async fn(FilesChanged))` (the watcher's batches, e.g. to mark
  proposals stale), called before the batch is sent to the platform as FilesChanged.
With no platform URL it starts the platform in-process on loopback and pairs with it by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from pydantic import BaseModel

from opik_connect.config import ProjectConfig, project_state_dir, user_state_dir
from opik_connect.connect.sandbox.read_commands import Sandbox, read_handlers
from opik_connect.connect.sandbox.repo_files import RepoFiles
from opik_connect.connect.sandbox.watcher import run_watcher
from opik_connect.connect.websocket_client import (
    DaemonLink,
    Handler,
    LinkState,
    PairCodeCallback,
    RunnerIdentity,
    SendOptions,
    StateCallback,
)
from opik_connect.git_runner import GitError, StartedGit
from opik_connect.link.auth import PairingStore, new_activation_key
from opik_connect.private_files import atomic_write_private
from opik_connect.protocol import BridgeError, FilesChanged, RootSummary

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from opik_connect.agent.platform.server import Platform

SUMMARY_REUSE_S = 5.0
"""The banner and the hello (and a quick reconnect) share one root summary: on a large repo
counting the visible files costs half a second."""
Service = Callable[[], Awaitable[None]]
PlatformSetup = Callable[["Platform"], Awaitable[None]]
Part = Callable[["Daemon"], Awaitable[None]]
FileListener = Callable[[FilesChanged], Awaitable[Any]]


def stable_runner_id(root: Path) -> str:
    """One runner id per project, kept across restarts so a remote pairing survives them."""
    path = project_state_dir(root) / "runner-id"
    with contextlib.suppress(FileNotFoundError):
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    value = uuid.uuid4().hex
    atomic_write_private(path, value.encode("utf-8"))
    return value


class Daemon:
    """One project's daemon. `async with Daemon(...)` starts it; leaving the block stops it."""

    def __init__(
        self,
        root: Path,
        config: ProjectConfig,
        *,
        platform_url: str | None = None,
        handlers: dict[str, Handler] | None = None,
        insecure: bool = False,
        on_state: StateCallback | None = None,
        on_pair_code: PairCodeCallback | None = None,
        runner_name: str | None = None,
        backoff_max_s: float = 30.0,
        platform_setup: PlatformSetup | None = None,
        parts: Sequence[Part] = (),
        watch: bool = True,
        first_listing: StartedGit | None = None,
    ) -> None:
        """handlers=None serves the sandbox's read commands (and watches the tree unless
        watch=False); a dict serves exactly those handlers, with no sandbox and no watcher.

        platform_setup runs on the in-process platform before it listens (e.g. to mount
        `platform.http_api`); it is not called when a platform URL is given.

        first_listing: `RepoFiles.start_listing(root)` started early (before the imports), for
        the sandbox's first index; closed at stop if never used.
        """
        self.root = root
        self.config = config
        self.platform_url = platform_url
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self._load_sandbox = handlers is None
        self._insecure = insecure
        self._on_state = on_state
        self._on_pair_code = on_pair_code
        self._backoff_max_s = backoff_max_s
        self._platform_setup = platform_setup
        self._parts = list(parts)
        self._watch = watch
        self._first_listing = first_listing
        self.file_listeners: list[FileListener] = []
        self._closers: list[Callable[[], Awaitable[Any]]] = []
        self.stopping = asyncio.Event()
        """Set by stop(); services may wait on it to end cleanly."""
        self.sandbox: Sandbox | None = None
        self._summary: tuple[float, RootSummary] | None = None
        """The read sandbox when handlers were not given (the watcher invalidates its cache)."""
        self._run_files: list[Path] = []
        self.identity = RunnerIdentity(
            runner_id=stable_runner_id(root),
            name=runner_name or config.runner_name or f"{os.uname().nodename}:{root.name}",
            project=root.name,
        )
        self.platform: Platform | None = None
        """The in-process platform when no URL was configured, else None."""
        self.link: DaemonLink | None = None
        self._services: list[Service] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._link_task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return self.link.url if self.link else (self.platform_url or "")

    @property
    def state(self) -> LinkState:
        return self.link.state if self.link else LinkState.STOPPED

    def add_service(self, factory: Service) -> None:
        """Run `factory()` as a task while the daemon runs (started now if already running)."""
        self._services.append(factory)
        if self._link_task is not None:
            self._tasks.append(asyncio.create_task(factory()))

    def add_closer(self, closer: Callable[[], Awaitable[Any]]) -> None:
        """Run `await closer()` at the end of stop(), last added first (e.g. close a store)."""
        self._closers.append(closer)

    async def send_event(
        self, type_name: str, event: BaseModel, **options: Unpack[SendOptions]
    ) -> str:
        """DaemonLink.send_event: queued until acked; wait_ack=True returns after the Ack."""
        if self.link is None:
            raise RuntimeError("the daemon is not started")
        return await self.link.send_event(type_name, event, **options)

    async def _files_changed(self, batch: FilesChanged) -> None:
        self._summary = None
        for listener in list(self.file_listeners):
            await listener(batch)
        await self.send_event("FilesChanged", batch)

    async def root_summary(self) -> RootSummary:
        """The sandbox's summary; without a sandbox (handlers given), git's unfiltered view."""
        if self.sandbox is not None:
            if self._summary is not None and time.monotonic() - self._summary[0] <= SUMMARY_REUSE_S:
                return self._summary[1]
            summary = await self.sandbox.summary()
            self._summary = (time.monotonic(), summary)
            return summary
        repo = RepoFiles(self.root)
        try:
            files = await repo.visible_files()
        except GitError:
            files = []
        branch, head = await repo.branch_and_head()
        return RootSummary(root=str(self.root), visible_files=len(files), branch=branch, head=head)

    async def start(self) -> None:
        """Sandbox, then the link (so parts can already queue events), parts, then run."""
        if self._load_sandbox:
            self.sandbox = await Sandbox.open(
                self.root, self.config, first_listing=self._first_listing
            )
            self.handlers.update(read_handlers(self.sandbox))
            if self._watch:
                self.add_service(self._watch_once_connected)
        self.link = await self._make_link()
        for part in self._parts:
            await part(self)
        self._link_task = asyncio.create_task(self.link.run())
        self._tasks.append(self._link_task)
        self._tasks.extend(asyncio.create_task(factory()) for factory in self._services)

    async def _watch_once_connected(self) -> None:
        """The watcher, from the link's first connection on: on a large tree setting up the
        watches takes CPU the handshake needs, and no change is reported to nobody (the index
        is rebuilt once the watches are up, so nothing before them is missed)."""
        assert self.link is not None and self.sandbox is not None
        await self.link.connected.wait()
        ready = asyncio.Event()
        preparing = asyncio.ensure_future(self._prepare_search(ready))
        try:
            await run_watcher(self.sandbox, self._files_changed, self.stopping, ready=ready)
        finally:
            preparing.cancel()

    async def _prepare_search(self, watching: asyncio.Event) -> None:
        """Once the watches are up (they keep what it builds current), what the first search
        needs, so that search does not wait for it; a failure is left for that search to meet."""
        assert self.sandbox is not None
        await watching.wait()
        try:
            await self.sandbox.prepare_search()
        except (BridgeError, OSError) as exc:
            log.info("search index not prepared ahead: %s", exc)

    async def _make_link(self) -> DaemonLink:
        pairing, store = None, None
        url = self.platform_url
        if url is None:
            # Imported here: a daemon dialing a team platform never loads the embedded one.
            from opik_connect.agent.platform.run_file import write_run_files
            from opik_connect.agent.platform.server import Platform

            self.platform = Platform(host="127.0.0.1", port=0)
            if self._platform_setup is not None:
                await self._platform_setup(self.platform)
            await self.platform.start()
            url = self.platform.url
            self._run_files = write_run_files(url, self.platform.operator_token, self.root)
            pairing = self.platform.pre_pair(
                self.identity.runner_id,
                new_activation_key(),
                runner_name=self.identity.name,
                project=self.identity.project,
            )
        else:
            store = PairingStore(user_state_dir() / "pairings.json")
        return DaemonLink(
            url,
            self.identity,
            handlers=self.handlers,
            root_summary=self.root_summary,
            pairing=pairing,
            pairing_store=store,
            pairing_key=f"{url} {self.root}",
            on_state=self._on_state,
            on_pair_code=self._on_pair_code,
            insecure=self._insecure,
            backoff_max_s=self._backoff_max_s,
        )

    async def wait_link_ended(self) -> None:
        """Returns when the link stops; raises what ended it (e.g. LinkError)."""
        assert self._link_task is not None
        await asyncio.shield(self._link_task)

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        assert self.link is not None
        async with asyncio.timeout(timeout_s):
            await self.link.connected.wait()

    async def stop(self) -> None:
        self.stopping.set()
        if self._first_listing is not None:
            self._first_listing.close()
        if self.link is not None:
            await self.link.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.platform is not None:
            from opik_connect.agent.platform.run_file import remove_run_files

            await self.platform.stop()
            remove_run_files(self._run_files)
        while self._closers:
            await self._closers.pop()()

    async def __aenter__(self) -> Daemon:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
