"""What the fix-flow tests share: the refund project, its fix, and a standalone platform.

What the fix-flow tests share: the refund project (an agent that answers 20 dollars where its
suite wants 10) with the proposal that fixes it, and a standalone platform outliving daemons.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from link_testkit import pre_pair_project
from platform_api_testkit import EmbeddedPlatform, embedded_platform, make_git_repo
from rich.console import Console

from fixtures.scripted_messages_api import text_turn, tool_turn
from opik_connect.agent.ollie.session_request import OllieLimits
from opik_connect.agent.platform.server import Platform, RunnerHandle
from opik_connect.agent.platform.services import PlatformServices
from opik_connect.agent.traces.store import TraceStore
from opik_connect.config import ProjectConfig
from opik_connect.connect.daemon import Daemon
from opik_connect.connect.fixes.daemon_wiring import FixParts
from opik_connect.connect.proposals.service import ProposalService
from opik_connect.protocol import FileEdit, ProposeChangeArgs

AGENT = """\
from opik import track


@track(entrypoint=True)
def answer(question: str = "", **extra):
    return {"output": "Your refund is 20 dollars"}
"""
SUITE = """\
name: refunds
items:
  - id: c1
    data: {question: "how much is my refund?"}
    assertions: [{contains: 10 dollars}]
"""
SUITE_TWO_ITEMS = (
    SUITE
    + """\
  - id: c2
    data: {question: "is there a refund?"}
    assertions: [{contains: "Your refund"}]
"""
)
FIX_EDIT = {"path": "agentpkg/agent.py", "old_string": "20 dollars", "new_string": "10 dollars"}

REFUND_FINAL = (
    "Cause: answer() hard-codes 20 dollars. Fix: 10 dollars. Evidence: suite refunds passes."
)


def refund_fix_script() -> list[dict]:
    """Ollie's turns: run the suite, read the agent, propose FIX_EDIT, answer once approved."""
    return [
        tool_turn("run_suite", {"suite": "refunds"}, match="refund", tool_id="toolu_before"),
        tool_turn(
            "read_file", {"path": "agentpkg/agent.py"}, match="toolu_before", tool_id="toolu_read"
        ),
        tool_turn(
            "propose_change",
            {
                "title": "Answer the right refund",
                "reason": "the suite's c1 fails: the agent says 20 dollars",
                "suite": "refunds",
                "test_case_ids": ["c1"],
                "edits": [FIX_EDIT],
            },
            match="toolu_read",
            tool_id="toolu_propose",
        ),
        text_turn(REFUND_FINAL, match=["toolu_propose", "approved"]),
    ]


def make_refund_project(root: Path) -> Path:
    """A git repo whose suite `refunds` fails on the user's tree and passes once fixed."""
    return make_git_repo(
        root,
        {
            "agentpkg/__init__.py": "",
            "agentpkg/agent.py": AGENT,
            ".opik/suites/refunds.yaml": SUITE,
        },
    )


def refund_fix(title: str = "Answer the right refund") -> ProposeChangeArgs:
    return ProposeChangeArgs(
        title=title,
        reason="the suite's c1 fails: the agent says 20 dollars",
        suite="refunds",
        test_case_ids=["c1"],
        edits=[FileEdit(**FIX_EDIT)],
    )


@asynccontextmanager
async def team_platform(repo: Path) -> AsyncIterator[tuple[Platform, PlatformServices]]:
    """A standalone platform the project's daemons are already paired with."""
    platform = Platform()
    services = PlatformServices(env={"ANTHROPIC_API_KEY": "k"})
    await services.setup(platform)
    await platform.start()
    pre_pair_project(platform, repo)
    try:
        yield platform, services
    finally:
        await platform.stop()
        await services.aclose()


def daemon_on(repo: Path, platform: Platform) -> tuple[Daemon, FixParts]:
    return daemon_dialing(repo, platform.url)


def daemon_dialing(repo: Path, url: str, **link: Any) -> tuple[Daemon, FixParts]:
    """A real daemon for `repo` dialing `url`, with its fixes parts, no terminal and short
    outbox and ack intervals; `link` passes on to Daemon (its backoff, say)."""
    fixes = FixParts(
        console=Console(file=io.StringIO()),
        terminal=False,
        judge=None,
        outbox_interval_s=0.1,
        ack_timeout_s=0.5,
    )
    daemon = Daemon(
        repo, ProjectConfig(), platform_url=url, handlers=None, parts=fixes.parts, **link
    )
    return daemon, fixes


@asynccontextmanager
async def linked_daemon(
    repo: Path, platform: Platform
) -> AsyncIterator[tuple[RunnerHandle, ProposalService]]:
    """A daemon_on `repo` while it is linked: the platform's handle on it, its proposal service."""
    daemon, fixes = daemon_on(repo, platform)
    async with daemon:
        runner = await platform.wait_runner(daemon.identity.runner_id)
        assert fixes.service is not None
        yield runner, fixes.service


@asynccontextmanager
async def ollie_with_fixes(
    repo: Path, api_url: str, transcripts: Path, *, traces: TraceStore, limits: OllieLimits
) -> AsyncIterator[tuple[EmbeddedPlatform, ProposalService]]:
    """Real Ollie on the embedded platform (its model at api_url), the daemon's fixes parts
    without a terminal: the platform, and the proposal service a test decides through."""
    services = PlatformServices(
        traces=traces,
        limits=limits,
        transcript_dir=transcripts,
        env={"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": api_url},
    )
    fixes = FixParts(console=Console(file=io.StringIO()), terminal=False, judge=None)
    async with embedded_platform(repo, services=services, handlers=None, parts=fixes.parts) as p:
        assert fixes.service is not None
        yield p, fixes.service


async def approve_when_proposed(service: ProposalService) -> str:
    """The user at the approval prompt: waits for the proposal and says yes."""
    while not service.pending():
        service.changed.clear()
        await service.changed.wait()
    [record] = service.pending()
    await service.approve(record.id, by="test")
    return record.id


async def until(check: Callable[[], object], within: float = 10.0) -> None:
    for _ in range(int(within / 0.05)):
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true within {within:g}s")
