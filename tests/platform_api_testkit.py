"""A real embedded platform (store + sessions + HTTP API) with a real daemon on a tmp git repo."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from opik_connect.agent.ollie.sessions import SessionDriver
from opik_connect.agent.platform.services import PlatformServices
from opik_connect.agent.platform.store import PlatformStore
from opik_connect.config import ProjectConfig
from opik_connect.connect.daemon import Daemon, Part
from opik_connect.connect.terminal.ask_client import PlatformAddress
from opik_connect.connect.websocket_client import Handler
from opik_connect.protocol import ProposalDecided, SuiteRunSummary


def make_git_repo(root: Path, files: Mapping[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {"README.md": "hello\n"}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "PATH": "/usr/bin:/bin",
    }
    for argv in (["git", "init", "-q", "-b", "main"],
                 ["git", "config", "user.name", "t"],
                 ["git", "config", "user.email", "t@example.com"],
                 ["git", "config", "commit.gpgsign", "false"],
                 ["git", "add", "-A"],
                 ["git", "commit", "-q", "-m", "init"]):  # fmt: skip
        subprocess.run(argv, cwd=root, check=True, env=env)
    return root


def suite_run(
    run_id: str, status: str, tree: str = "user", suite: str = "refunds"
) -> SuiteRunSummary:
    """A finished suite run with no items, for what the store and the read endpoints keep."""
    return SuiteRunSummary(
        run_id=run_id,
        suite=suite,
        status=status,
        tree=tree,
        items=[],
        started_at="2026-01-01T00:00:00Z",
        duration_s=0.5,
        judge="none",
    )


def approved(branch: str, commit: str, after: SuiteRunSummary) -> ProposalDecided:
    """Proposal p1 approved onto `branch`, with the suite run on the fix."""
    return ProposalDecided(
        proposal_id="p1", decision="approved", branch=branch, commit=commit, suite_results=[after]
    )


@dataclass
class EmbeddedPlatform:
    daemon: Daemon
    services: PlatformServices
    address: PlatformAddress

    @property
    def store(self) -> PlatformStore:
        assert self.services.store is not None
        return self.services.store


NO_HANDLERS: dict[str, Handler] = {}


@asynccontextmanager
async def embedded_platform(
    root: Path,
    driver: SessionDriver | None = None,
    *,
    env: Mapping[str, str] | None = None,
    services: PlatformServices | None = None,
    handlers: dict[str, Handler] | None = NO_HANDLERS,
    parts: Sequence[Part] = (),
) -> AsyncIterator[EmbeddedPlatform]:
    """The daemon starts the platform in-process and calls services.setup before it listens.

    handlers=None serves the real sandbox's read commands; add more through daemon.handlers.
    """
    services = services or PlatformServices(
        driver=driver, env=env if env is not None else {"ANTHROPIC_API_KEY": "k"}
    )
    daemon = Daemon(
        root,
        ProjectConfig(),
        handlers=None if handlers is None else dict(handlers),
        platform_setup=services.setup,
        parts=parts,
    )
    try:
        async with daemon:
            await daemon.wait_connected(10)
            assert daemon.platform is not None
            address = PlatformAddress(url=daemon.platform.url, token=daemon.platform.operator_token)
            yield EmbeddedPlatform(daemon, services, address)
    finally:
        await services.aclose()
