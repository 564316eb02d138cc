"""The daemon assembly: embedded platform, the real sandbox's handlers, hooks for other parts."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from pathlib import Path

import pytest
from embedded_pair import embedded_pair
from platform_api_testkit import make_git_repo

from opik_connect.agent.platform.server import Platform
from opik_connect.config import ProjectConfig, user_state_dir
from opik_connect.connect.daemon import Daemon
from opik_connect.connect.sandbox.read_commands import Sandbox
from opik_connect.connect.sandbox.search_files import FileSearch
from opik_connect.git_runner import NotAGitRepository, find_git_root
from opik_connect.protocol import (
    BridgeError,
    ErrorCode,
    FileChange,
    FilesChanged,
    ListFilesArgs,
    ReadFileArgs,
    RunSuiteArgs,
    SearchFilesArgs,
)

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("state_dir")]


@pytest.fixture
def repo(tmp_path) -> Path:
    files = {"app.py": "def main():\n    return 42\n", ".env": "API_KEY=sk-secret\n"}
    return make_git_repo(tmp_path / "proj", files)


def test_find_git_root(repo, tmp_path):
    (repo / "sub").mkdir()
    assert find_git_root(repo / "sub") == repo.resolve()
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(NotAGitRepository, match="not inside a git repository"):
        find_git_root(outside)


async def test_embedded_pair_serves_the_sandbox_read_commands(repo):
    async with embedded_pair(repo) as (platform, runner, daemon):
        result = await runner.read_file(ReadFileArgs(path="app.py"))
        assert result.content.startswith("def main")
        listing = await runner.list_files(ListFilesArgs())
        assert listing.files == ["app.py"]  # .env is sensitive, never listed
        with pytest.raises(BridgeError) as err:
            await runner.read_file(ReadFileArgs(path=".env"))
        assert err.value.code == ErrorCode.SENSITIVE_PATH
        with pytest.raises(BridgeError) as err:
            await runner.run_suite(RunSuiteArgs(suite="s"))  # not plugged in here
        assert err.value.code == ErrorCode.UNKNOWN_TYPE
        info = platform.runners()[0]
        assert info.connected and info.project == "proj"
        assert info.root is not None and info.root.visible_files == 1
        assert daemon.sandbox is not None


async def test_hooks_let_other_parts_plug_in(repo):
    calls: list[str] = []
    mounted: list[Platform] = []

    async def run_suite(args: RunSuiteArgs):
        raise BridgeError(ErrorCode.SUITE_NOT_FOUND, f"no suite {args.suite}")

    async def watcher() -> None:
        calls.append("started")
        await asyncio.Event().wait()

    async def setup(platform: Platform) -> None:
        mounted.append(platform)

    async def close() -> None:
        calls.append("closed")

    daemon = Daemon(repo, ProjectConfig(), platform_setup=setup)
    daemon.add_service(watcher)
    daemon.add_closer(close)
    async with daemon:
        await daemon.wait_connected()
        assert mounted == [daemon.platform]
        runner = daemon.platform.runner(daemon.identity.runner_id)
        daemon.handlers["RunSuite"] = run_suite  # registered after start: served at once
        with pytest.raises(BridgeError) as err:
            await runner.run_suite(RunSuiteArgs(suite="smoke"))
        assert err.value.code == ErrorCode.SUITE_NOT_FOUND
        events = daemon.platform.event_queue()
        change = FilesChanged(changes=[FileChange(path="app.py", change="modified")])
        await daemon.send_event("FilesChanged", change)
        _, kind, event = await asyncio.wait_for(events.get(), 5)
        assert (kind, event) == ("FilesChanged", change)
        assert calls == ["started"]
        run_file = user_state_dir() / "platform.json"
        found = json.loads(run_file.read_text())
        assert found["url"] == daemon.url and found["token"] == daemon.platform.operator_token
        assert stat.S_IMODE(run_file.stat().st_mode) == 0o600
    assert not run_file.exists()
    assert calls == ["started", "closed"]


async def test_runner_id_is_stable_per_project(repo):
    first = Daemon(repo, ProjectConfig(), handlers={})
    second = Daemon(repo, ProjectConfig(), handlers={})
    assert first.identity.runner_id == second.identity.runner_id


async def test_parts_plug_in_before_connecting_and_the_watcher_reports_changes(repo):
    batches: list[FilesChanged] = []

    async def remember(batch: FilesChanged) -> None:
        batches.append(batch)

    async def part(daemon: Daemon) -> None:
        assert daemon.link is not None and not daemon.link.connected.is_set()
        daemon.file_listeners.append(remember)
        await daemon.send_event(  # queued until the link is up
            "FilesChanged", FilesChanged(changes=[FileChange(path="x", change="added")])
        )

    queues: list[asyncio.Queue] = []

    async def setup(platform: Platform) -> None:
        queues.append(platform.event_queue())

    async with Daemon(repo, ProjectConfig(), parts=[part], platform_setup=setup) as daemon:
        await daemon.wait_connected()
        events = queues[0]
        _, kind, first = await asyncio.wait_for(events.get(), 5)
        assert (kind, first.changes[0].path) == ("FilesChanged", "x")
        await asyncio.sleep(0.3)  # let the watcher arm
        (repo / "app.py").write_text("def main():\n    return 43\n")
        (repo / ".env").write_text("API_KEY=changed\n")
        _, kind, event = await asyncio.wait_for(events.get(), 10)
        assert kind == "FilesChanged"
        assert event.changes == [FileChange(path="app.py", change="modified")]
        assert batches == [event]


async def test_the_search_index_is_built_once_the_watcher_is_up(repo, monkeypatch):
    """The first search on a large tree would wait seconds for the secret index: the daemon
    builds it once its watcher is up (which keeps it current), before any search."""
    (repo / "settings.py").write_text('AWS = "AKIAB234567890ABCDEF"\n')
    prepared = asyncio.Event()
    prepare = Sandbox.prepare_search

    async def noting(sandbox: Sandbox) -> None:
        await prepare(sandbox)
        prepared.set()

    monkeypatch.setattr(Sandbox, "prepare_search", noting)
    async with Daemon(repo, ProjectConfig()) as daemon:
        await daemon.wait_connected()
        await asyncio.wait_for(prepared.wait(), 10)
        assert daemon.sandbox is not None and daemon.sandbox.index.watched
        secrets = daemon.sandbox._search.secrets
        assert list(secrets.held) == ["settings.py"] and secrets.shadow_root is not None
        assert (secrets.shadow_root / "settings.py").is_file()


async def test_a_search_index_that_cannot_be_built_ahead_leaves_the_daemon_serving(
    repo, monkeypatch, caplog
):
    """The build ahead fails (ripgrep cannot run): it is logged, the daemon goes on answering,
    and the first search meets the error itself, with its code."""
    tried = asyncio.Event()

    async def failing(_search: object, _targets: object, _listing: object) -> list[str]:
        tried.set()
        raise BridgeError(ErrorCode.INTERNAL, "ripgrep could not run the secret pre-filter")

    monkeypatch.setattr(FileSearch, "_rg_secrets", failing)
    caplog.set_level(logging.INFO, logger="opik_connect.connect.daemon")
    async with Daemon(repo, ProjectConfig()) as daemon:
        await daemon.wait_connected()
        await asyncio.wait_for(tried.wait(), 10)
        runner = daemon.platform.runner(daemon.identity.runner_id)
        assert (await runner.read_file(ReadFileArgs(path="app.py"))).content.startswith("def")
        with pytest.raises(BridgeError) as err:
            await runner.search_files(SearchFilesArgs(pattern="main"))
        assert err.value.code == ErrorCode.INTERNAL
    assert any("not prepared ahead" in r.getMessage() for r in caplog.records)
