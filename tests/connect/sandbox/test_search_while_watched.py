"""With the real watcher running, a search right after an edit waits for the watcher's batch:
ripgrep never reads raw a file that just gained a secret, and a search waits for nothing else."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sandbox_repo import make_repo
from search_reads import record_search_reads

from opik_connect.config import ProjectConfig
from opik_connect.connect.sandbox import search_files
from opik_connect.connect.sandbox.read_commands import Sandbox
from opik_connect.connect.sandbox.watcher import run_watcher
from opik_connect.protocol import FilesChanged, SearchFilesArgs

pytestmark = pytest.mark.timeout(60)

KEY = "AKIAB234567890ABCDEF"
SECOND_KEY = "AKIAZYXWVUTSRQPONMLK"
REDACTED = r"^AWS = \"\[REDACTED:aws_access_key\]\"$"


async def _ignore(_batch: FilesChanged) -> None:
    return None


@contextlib.asynccontextmanager
async def _watching(sandbox: Sandbox, debounce_ms: int = 50) -> AsyncIterator[None]:
    """The real inotify watcher on the sandbox, its watches up; stopped on the way out."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        run_watcher(sandbox, _ignore, stop, debounce_ms=debounce_ms, ready=ready)
    )
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


def _search(sandbox: Sandbox, pattern: str) -> asyncio.Task:
    return asyncio.ensure_future(sandbox.search_files(SearchFilesArgs(pattern=pattern)))


async def test_a_search_right_after_a_secret_is_written_reads_the_same_whatever_its_value(
    tmp_path: Path, monkeypatch
) -> None:
    """Two repos that differ only in a key's value. With the watcher running and the index
    built, a file gains the key and a search starts at once, before the watcher's batch: for a
    prefix of either raw key, it reads the same files and gives the same answer in both (it
    waited for the batch, so ripgrep read the file's redacted copy), and it finds the line
    only redaction makes in the file just edited."""
    patterns = [k[:n] for n in (4, 8, 12, 20) for k in (KEY, SECOND_KEY)]
    patterns += [REDACTED, "AWS", "import os", "needle"]
    seen = []
    for key in (KEY, SECOND_KEY):
        repo = make_repo(tmp_path / key)
        for i in range(len(patterns)):
            (repo / "pkg" / f"m{i}.py").write_text("import os\n")
        sandbox = await Sandbox.open(repo, ProjectConfig())
        answers = []
        async with _watching(sandbox):
            await sandbox.search_files(SearchFilesArgs(pattern="needle"))  # the index is built
            read = record_search_reads(monkeypatch)
            for i, pattern in enumerate(patterns):
                (repo / "pkg" / f"m{i}.py").write_text(f'import os\nAWS = "{key}"\n')
                answers.append(await sandbox.search_files(SearchFilesArgs(pattern=pattern)))
            monkeypatch.undo()
        seen.append([[*paths, repr(a)] for paths, a in zip(read, answers, strict=True)])
    assert seen[0] == seen[1]
    by_pattern = dict(zip(patterns, seen[0], strict=True))
    assert by_pattern[KEY[:8]][:-1] == []
    assert f"pkg/m{patterns.index(REDACTED)}.py" in by_pattern[REDACTED][-1]
    assert "truncated=False" in by_pattern[REDACTED][-1]


async def test_a_search_waits_for_no_change_made_after_it_started(
    tmp_path: Path, monkeypatch
) -> None:
    """A tree that keeps changing: the search waits for the batch holding the edit made
    before it, not for the ones that keep coming (it would never answer otherwise)."""
    monkeypatch.setattr(search_files, "SEARCH_TIMEOUT_S", 5.0)
    sandbox = await Sandbox.open(make_repo(tmp_path / "proj"), ProjectConfig())
    busy = sandbox.root / "pkg" / "busy.py"
    async with _watching(sandbox, debounce_ms=20):
        await sandbox.search_files(SearchFilesArgs(pattern="needle"))
        (sandbox.root / "early.py").write_text("needle\n")
        search = _search(sandbox, "needle")
        writes = 0
        while not search.done():
            writes += 1
            busy.write_text(f"x = {writes}\n")
            await asyncio.sleep(0.002)  # the pace of the edits, not a wait for anything
        result = search.result()
    assert not result.truncated and "early.py" in [m.file for m in result.matches]
    assert writes > 1


async def test_a_watcher_that_stops_lets_the_searches_waiting_for_it_go(tmp_path: Path) -> None:
    """Its batch will never come: the search answers as unwatched (the index trusted for a
    while), and with no watcher running a search waits for nothing."""
    sandbox = await Sandbox.open(make_repo(tmp_path / "proj"), ProjectConfig())
    async with _watching(sandbox, debounce_ms=60_000):
        assert sandbox.index.settled is not None
        assert sandbox.index.settled() is None  # nothing queued: nothing to wait for
        await sandbox.search_files(SearchFilesArgs(pattern="needle"))
        (sandbox.root / "app.py").write_text(f'AWS = "{KEY}"\n')
        search = _search(sandbox, "AWS")
        await asyncio.sleep(0)  # one step: the search has seen the queued change and waits
        assert not search.done()
    result = await asyncio.wait_for(search, 10)
    assert not result.truncated
    assert sandbox.index.settled is None and not sandbox.index.watched
    (sandbox.root / "app.py").write_text("needle\n")
    after = await sandbox.search_files(SearchFilesArgs(pattern="needle"))
    assert not after.truncated and "README.md" in [m.file for m in after.matches]


async def test_what_changed_before_the_watches_came_up_is_looked_at(tmp_path: Path) -> None:
    """A search before the watcher is up builds the secret index with no watcher; a file that
    gains a secret before the watches come up is in no event, so the index is rebuilt then."""
    repo = make_repo(tmp_path / "proj")
    sandbox = await Sandbox.open(repo, ProjectConfig())
    assert (await sandbox.search_files(SearchFilesArgs(pattern=REDACTED))).matches == []
    (repo / "settings.py").write_text(f'AWS = "{KEY}"\n')
    async with _watching(sandbox):
        found = await sandbox.search_files(SearchFilesArgs(pattern=REDACTED))
        assert [m.file for m in found.matches] == ["settings.py"]
        assert "settings.py" in sandbox._search.secrets.held
