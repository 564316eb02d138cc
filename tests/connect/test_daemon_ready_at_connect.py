"""Connected means ready: the first commands get complete answers, and start-up misses no file.

The daemon starts its first git listing before it imports its modules; these check that what
the platform sees at connect is the whole of git's view, and that a file made while the daemon
starts, after that listing, is listed once the watches are up (the watcher's catch-up counts
from when git started, not from when the index was built).
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from link_testkit import pre_pair_project, start_cli
from proposal_fixtures import git

from opik_connect.agent.platform.server import Platform
from opik_connect.config import ProjectConfig
from opik_connect.connect.sandbox.read_commands import Sandbox
from opik_connect.connect.sandbox.repo_files import RepoFiles
from opik_connect.protocol import ListFilesArgs, SearchFilesArgs

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("state_dir")]


def make_tree(root: Path) -> set[str]:
    """A repo of 8 x 20 files, an ignored and a sensitive file, and an untracked one; the paths
    ListFiles must show."""
    root.mkdir()
    (root / ".gitignore").write_text("*.log\n")
    (root / "run.log").write_text("needle = 7\n")  # ignored
    (root / ".env").write_text("needle = 7\n")  # sensitive
    expected = {".gitignore"}
    for d in range(8):
        for f in range(20):
            rel = f"pkg{d}/sub/mod{f}.py"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(f"needle = {d * 20 + f}\n")
            expected.add(rel)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tree")
    (root / "pkg0" / "untracked.py").write_text("needle = 'new'\n")
    return expected | {"pkg0/untracked.py"}


def listed_files(entries: list[str]) -> set[str]:
    return {entry for entry in entries if not entry.endswith("/")}


async def test_commands_sent_the_moment_the_daemon_connects_get_the_whole_view(
    tmp_path: Path, state_dir: Path
) -> None:
    repo = tmp_path / "repo"
    expected = make_tree(repo)
    env = {**os.environ, "OPIK_CONNECT_STATE_DIR": str(state_dir)}
    env.pop("OPIK_CONNECT_PLATFORM", None)
    async with Platform() as platform:
        runner_id = pre_pair_project(platform, repo.resolve())
        proc = await start_cli(
            ["--platform", platform.url], repo, env, stdin=asyncio.subprocess.DEVNULL
        )
        try:
            async with asyncio.timeout(30):
                runner = await platform.wait_runner(runner_id)
            listing, search = await asyncio.gather(
                runner.list_files(ListFilesArgs(depth=3)),
                runner.search_files(SearchFilesArgs(pattern="^needle = (7|'new')$")),
            )
            info = next(r for r in platform.runners() if r.runner_id == runner_id)
        finally:
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                await proc.communicate()
    assert listed_files(listing.files) == expected and not listing.truncated
    assert {m.file for m in search.matches} == {"pkg0/sub/mod7.py", "pkg0/untracked.py"}
    assert search.total_matches == 2 and not search.truncated
    assert info.root is not None and info.root.visible_files == len(expected)


async def test_a_file_made_during_start_up_after_the_first_listing_is_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    expected = make_tree(repo)
    first_listing = RepoFiles.start_listing(repo.resolve())
    assert await first_listing.wait() == 0  # git has listed: it cannot have seen what follows
    (repo / "pkg3" / "sub" / "during.py").write_text("made while the daemon starts\n")
    (repo / "pkg5" / "sub" / "mod7.py").unlink()
    # Changed just after git started, well before the index is built: caught only if the index
    # counts from git's start (no slack to hide a later count).
    monkeypatch.setattr("opik_connect.connect.sandbox.visible_index.CATCH_UP_SLACK_NS", 0)
    for folder in ("pkg3/sub", "pkg5/sub"):
        os.utime(repo / folder, ns=(first_listing.started_ns + 1,) * 2)
    sandbox = await Sandbox.open(repo, ProjectConfig(), first_listing=first_listing)
    before = listed_files((await sandbox.list_files(ListFilesArgs(depth=3))).files)
    assert before == expected - {"pkg5/sub/mod7.py"}  # git listed it; it is gone: not listable
    folders = ["", *sorted({str(Path(p).parent) for p in expected} | {"pkg0", "pkg3", "pkg5"})]
    await sandbox.index.watches_up(folders)  # what the watcher does once its watches are up
    listing = await sandbox.list_files(ListFilesArgs(depth=3))
    assert listed_files(listing.files) == before | {"pkg3/sub/during.py"}
