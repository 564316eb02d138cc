"""The watcher reports visible file changes only, debounced, and stops on its event."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from opik_connect.config import ProjectConfig
from opik_connect.connect.sandbox.read_commands import Sandbox
from opik_connect.connect.sandbox.watcher import run_watcher
from opik_connect.protocol import FileChange, FilesChanged, ListFilesArgs
from tests.sandbox_repo import git, make_repo

pytestmark = pytest.mark.timeout(30)


class Recorder:
    """Runs the watcher in a task and collects its batches."""

    def __init__(self, sandbox: Sandbox, budget: int | None = None) -> None:
        self.sandbox = sandbox
        self.budget = budget
        self.notices: list[str] = []
        self.batches: list[FilesChanged] = []
        self.stop = asyncio.Event()
        self.arrived = asyncio.Event()
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def on_change(self, batch: FilesChanged) -> None:
        self.batches.append(batch)
        self.arrived.set()

    async def __aenter__(self) -> Recorder:
        self.task = asyncio.create_task(
            run_watcher(
                self.sandbox,
                self.on_change,
                self.stop,
                debounce_ms=50,
                notice=self.notices.append,
                budget=self.budget,
                ready=self.ready,
            )
        )
        await asyncio.wait_for(self.ready.wait(), 5)  # the watches are up
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)

    async def next_changes(self) -> list[FileChange]:
        await asyncio.wait_for(self.arrived.wait(), 5.0)
        self.arrived.clear()
        changes = [c for batch in self.batches for c in batch.changes]
        self.batches.clear()
        return changes

    async def quiet_for(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.arrived.wait(), seconds)
        return not self.batches


@pytest.fixture
async def sandbox(tmp_path: Path) -> Sandbox:
    return await Sandbox.open(make_repo(tmp_path / "proj"), ProjectConfig())


async def test_create_modify_delete_visible_file(sandbox: Sandbox) -> None:
    path = sandbox.root / "new.py"
    async with Recorder(sandbox) as rec:
        path.write_text("one\n")
        assert FileChange(path="new.py", change="added") in await rec.next_changes()
        path.write_text("two\n")
        assert FileChange(path="new.py", change="modified") in await rec.next_changes()
        path.unlink()
        assert FileChange(path="new.py", change="deleted") in await rec.next_changes()


async def test_nested_tracked_file_change_is_reported(sandbox: Sandbox) -> None:
    async with Recorder(sandbox) as rec:
        (sandbox.root / "pkg" / "util.py").write_text("changed\n")
        assert [c.path for c in await rec.next_changes()] == ["pkg/util.py"]


async def test_ignored_sensitive_and_git_internal_changes_are_not_reported(
    sandbox: Sandbox,
) -> None:
    async with Recorder(sandbox) as rec:
        (sandbox.root / "debug.log").write_text("ignored\n")
        (sandbox.root / "build" / "new.py").write_text("ignored dir\n")
        (sandbox.root / ".env").write_text("SECRET=1\n")
        (sandbox.root / "server.pem").write_text("key\n")
        (sandbox.root / ".git" / "scratch").write_text("internal\n")
        assert await rec.quiet_for(1.0)
        (sandbox.root / "visible.txt").write_text("seen\n")
        changes = await rec.next_changes()
    assert [c.path for c in changes] == ["visible.txt"]


async def test_a_burst_of_writes_is_debounced_into_few_batches(sandbox: Sandbox) -> None:
    async with Recorder(sandbox) as rec:
        for i in range(20):
            (sandbox.root / f"burst{i}.txt").write_text("x\n")
        changes = await rec.next_changes()
        await rec.quiet_for(0.3)
        changes += [c for b in rec.batches for c in b.changes]
        assert len(rec.batches) <= 1
    assert {c.path for c in changes} == {f"burst{i}.txt" for i in range(20)}


async def test_idle_watcher_uses_almost_no_cpu_and_stops_promptly(sandbox: Sandbox) -> None:
    async with Recorder(sandbox) as rec:
        before = time.process_time()
        await asyncio.sleep(1.0)
        used = time.process_time() - before
        started = time.monotonic()
    assert used < 0.1, f"idle watcher used {used:.3f}s of CPU in 1s"
    assert time.monotonic() - started < 2.0
    assert rec.task is not None and rec.task.done()


async def test_files_in_a_new_directory_are_reported(sandbox: Sandbox) -> None:
    async with Recorder(sandbox) as rec:
        (sandbox.root / "fresh" / "deep").mkdir(parents=True)
        (sandbox.root / "fresh" / "deep" / "early.py").write_text("made with the dir\n")
        first = {c.path for c in await rec.next_changes()}
        (sandbox.root / "fresh" / "deep" / "later.py").write_text("made after\n")
        second = {c.path for c in await rec.next_changes()}
    assert "fresh/deep/early.py" in first | second
    assert "fresh/deep/later.py" in first | second
    assert not rec.notices


async def test_reading_files_reports_nothing(sandbox: Sandbox) -> None:
    async with Recorder(sandbox) as rec:
        for path in sandbox.root.rglob("*.py"):
            path.read_bytes()
        assert await rec.quiet_for(0.5)


async def test_the_watch_limit_is_said_and_the_root_stays_watched(sandbox: Sandbox) -> None:
    async with Recorder(sandbox, budget=1) as rec:
        assert len(rec.notices) == 1
        assert "partial: 1 of" in rec.notices[0]
        assert "checked against their files' content" in rec.notices[0]
        (sandbox.root / "pkg" / "util.py").write_text("unwatched directory\n")
        (sandbox.root / "top.py").write_text("in the root\n")
        changes = await rec.next_changes()
    assert [c.path for c in changes] == ["top.py"]


async def test_list_files_follows_the_watcher_and_git_index(sandbox: Sandbox) -> None:
    async with Recorder(sandbox) as rec:
        assert sandbox.index.watched
        before = await sandbox.list_files(ListFilesArgs(depth=2))
        (sandbox.root / "pkg" / "fresh.py").write_text("x = 1\n")
        await rec.next_changes()
        after = await sandbox.list_files(ListFilesArgs(depth=2))
        assert set(after.files) - set(before.files) == {"pkg/fresh.py"}
        git(sandbox.root, "add", "-f", "debug.log")  # tracked now, so visible
        for _ in range(100):
            if "debug.log" in (await sandbox.list_files(ListFilesArgs())).files:
                break
            await asyncio.sleep(0.05)
        assert "debug.log" in (await sandbox.list_files(ListFilesArgs())).files
    assert not sandbox.index.watched


async def test_waiting_out_the_debounce_uses_almost_no_cpu(sandbox: Sandbox) -> None:
    rec = Recorder(sandbox)
    rec.task = asyncio.create_task(
        run_watcher(sandbox, rec.on_change, rec.stop, debounce_ms=1000, notice=rec.notices.append)
    )
    await asyncio.sleep(0.3)
    try:
        (sandbox.root / "slow.py").write_text("x\n")
        before = time.process_time()
        changes = await rec.next_changes()
        used = time.process_time() - before
    finally:
        rec.stop.set()
        await asyncio.wait_for(rec.task, 5)
    assert [c.path for c in changes] == ["slow.py"]
    assert used < 0.3, f"the watcher used {used:.3f}s of CPU over a 1 s debounce"


async def test_a_file_made_before_the_watches_is_listed_once_they_are_up(
    sandbox: Sandbox,
) -> None:
    """The index built before the watcher started is rebuilt once every directory is watched."""
    await sandbox.list_files(ListFilesArgs())
    (sandbox.root / "pkg" / "early.py").write_text("made before the watches\n")
    async with Recorder(sandbox):
        assert sandbox.index.watched
        assert "early.py" in (await sandbox.list_files(ListFilesArgs(path="pkg"))).files
