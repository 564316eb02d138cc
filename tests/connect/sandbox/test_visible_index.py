"""The ListFiles index: git's visible, listable files, updated path by path from the watcher."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from opik_connect.config import ProjectConfig
from opik_connect.connect.sandbox.listing import ListingCache
from opik_connect.connect.sandbox.policy import PathPolicy
from opik_connect.connect.sandbox.repo_files import RepoFiles
from opik_connect.connect.sandbox.visible_index import VisibleIndex
from tests.sandbox_repo import make_repo


@pytest.fixture
async def index(tmp_path: Path) -> VisibleIndex:
    root = make_repo(tmp_path / "proj")
    (root / ".env").write_text("SECRET=1\n")
    os.symlink("/etc/hostname", root / "outside.txt")
    found = VisibleIndex(await RepoFiles.open(root), PathPolicy(root, ProjectConfig().deny))
    found.watched = True
    return found


async def test_built_from_git_without_sensitive_ignored_or_escaping_files(
    index: VisibleIndex,
) -> None:
    files = list(await index.files())
    assert files == sorted(files)
    assert {"app.py", "pkg/util.py", "notes.txt", "README.md", ".gitignore"} <= set(files)
    for hidden in (".env", "debug.log", "build/out.py", "outside.txt"):
        assert hidden not in files


async def test_reported_changes_update_only_their_paths(index: VisibleIndex) -> None:
    await index.files()
    root = index.repo.root
    (root / "pkg" / "new.py").write_text("x = 1\n")
    (root / "app.py").unlink()
    os.symlink("/etc/hostname", root / "pkg" / "escape.py")
    await index.apply(["pkg/new.py", "app.py", "pkg/escape.py"])
    files = list(await index.files())
    assert "pkg/new.py" in files and "app.py" not in files and "pkg/escape.py" not in files
    assert files == sorted(files)


async def test_a_gitignore_change_rebuilds_from_git(index: VisibleIndex) -> None:
    await index.files()
    root = index.repo.root
    (root / ".gitignore").write_text("*.log\nbuild/\nforced.txt\nnotes.txt\n")
    await index.apply([".gitignore"])
    assert "notes.txt" not in await index.files()


async def test_unwatched_index_is_rebuilt_when_old(index: VisibleIndex, monkeypatch) -> None:
    index.watched = False
    await index.files()
    (index.repo.root / "later.py").write_text("y = 2\n")
    assert "later.py" not in await index.files()
    monkeypatch.setattr("opik_connect.connect.sandbox.visible_index.REBUILD_AFTER_S", -1.0)
    assert "later.py" in await index.files()


async def test_watches_up_rechecks_only_directories_changed_since_the_listing(
    index: VisibleIndex, monkeypatch
) -> None:
    """Files made or removed before the watches existed are caught up without a rebuild."""
    root = index.repo.root
    an_hour_ago = time.time() - 3600
    directories = ["", "pkg", "build"]
    for rel in directories:
        os.utime(root / rel, (an_hour_ago, an_hour_ago))
    await index.files()
    asked: list[tuple[str, ...]] = []
    listed = index.repo.visible_files

    async def visible_files(*pathspecs: str) -> list[str]:
        asked.append(pathspecs)
        return await listed(*pathspecs)

    monkeypatch.setattr(index.repo, "visible_files", visible_files)
    (root / "pkg" / "early.py").write_text("made before the watches\n")
    (root / "pkg" / "util.py").unlink()
    await index.watches_up(directories)
    files = await index.files()
    assert "pkg/early.py" in files and "pkg/util.py" not in files and "app.py" in files
    assert asked == [("pkg",)]


async def test_the_listing_shares_the_watched_index_set(index: VisibleIndex, monkeypatch) -> None:
    """A listing taken from git before the watcher came up lasts its few seconds only; then
    the listing is the index's own set (no second copy), and a watcher batch's invalidation
    brings the index's change into it."""
    index.watched = False
    listings = ListingCache(index.repo, index)
    from_git = (await listings.current()).visible
    assert from_git is not await index.files() and set(from_git) >= set(await index.files())
    index.watched = True
    assert (await listings.current()).visible is from_git
    monkeypatch.setattr("opik_connect.connect.sandbox.listing.VISIBLE_CACHE_TTL_S", -1.0)
    assert (await listings.current()).visible is await index.files()
    (index.repo.root / "pkg" / "new.py").write_text("x = 1\n")
    await index.apply(["pkg/new.py"])
    listings.invalidate()
    shared = (await listings.current()).visible
    assert shared is await index.files() and "pkg/new.py" in shared
