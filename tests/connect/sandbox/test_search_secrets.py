"""The search's secret index: a match that only redaction makes is found without reading every
file that holds a secret, the watcher's batches keep it current, and a stale entry never leaks."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from sandbox_repo import make_repo

from opik_connect.config import ProjectConfig
from opik_connect.connect.sandbox import search_files, search_secrets
from opik_connect.connect.sandbox.read_commands import Sandbox
from opik_connect.connect.sandbox.ripgrep import find_ripgrep, rg_files_with_matches
from opik_connect.protocol import SearchFilesArgs

KEY = "AKIAB234567890ABCDEF"
REDACTED = r"^AWS = \"\[REDACTED:aws_access_key\]\"$"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "proj")


async def _watched(repo: Path) -> Sandbox:
    """A sandbox whose file list stands for a running watcher (changes come by files_changed)."""
    sandbox = await Sandbox.open(repo, ProjectConfig())
    await sandbox.index.files()
    sandbox.index.watched = True
    return sandbox


async def _files(sandbox: Sandbox, pattern: str) -> list[str]:
    result = await sandbox.search_files(SearchFilesArgs(pattern=pattern))
    return [m.file for m in result.matches]


async def test_a_match_only_redaction_makes_is_found(repo: Path) -> None:
    (repo / "settings.py").write_text(f'import os\nAWS = "{KEY}"\n')
    sandbox = await _watched(repo)
    result = await sandbox.search_files(SearchFilesArgs(pattern=REDACTED))
    assert [(m.file, m.line) for m in result.matches] == [("settings.py", 2)]
    assert (result.total_matches, result.truncated) == (1, False)
    assert await _files(sandbox, "AKIAB") == []


async def test_the_watchers_batches_keep_the_index_current(repo: Path) -> None:
    sandbox = await _watched(repo)
    assert await _files(sandbox, REDACTED) == []
    (repo / "settings.py").write_text(f'AWS = "{KEY}"\n')
    (repo / "app.py").write_text(f'AWS = "{KEY}"\n')
    await sandbox.files_changed(["settings.py", "app.py"])
    assert await _files(sandbox, REDACTED) == ["app.py", "settings.py"]
    (repo / "app.py").write_text("AWS = None\n")
    (repo / "settings.py").unlink()
    await sandbox.files_changed(["settings.py", "app.py"])
    assert await _files(sandbox, REDACTED) == []


async def test_lost_changes_rebuild_the_index(repo: Path) -> None:
    sandbox = await _watched(repo)
    assert await _files(sandbox, REDACTED) == []
    (repo / "app.py").write_text(f'AWS = "{KEY}"\n')
    sandbox.changes_lost()
    sandbox.index.watched = True
    assert await _files(sandbox, REDACTED) == ["app.py"]


async def test_a_stale_entry_hides_a_match_but_never_shows_a_secret(repo: Path) -> None:
    """An edit the watcher has not reported yet: the file is still read and redacted afresh."""
    sandbox = await _watched(repo)
    assert await _files(sandbox, REDACTED) == []
    (repo / "app.py").write_text(f'AWS = "{KEY}"\n')
    result = await sandbox.search_files(SearchFilesArgs(pattern="AWS"))
    assert [m.content for m in result.matches] == ['AWS = "[REDACTED:aws_access_key]"']
    assert await _files(sandbox, KEY) == []


async def test_unwatched_the_index_is_trusted_for_a_while_only(repo: Path, monkeypatch) -> None:
    sandbox = await Sandbox.open(repo, ProjectConfig())
    assert await _files(sandbox, REDACTED) == []
    monkeypatch.setattr(search_secrets, "REBUILD_AFTER_S", 0.0)
    (repo / "app.py").write_text(f'AWS = "{KEY}"\n')
    assert await _files(sandbox, REDACTED) == ["app.py"]


async def test_a_key_block_is_indexed_as_redacted(repo: Path) -> None:
    body = "MIIEow" + "A" * 58
    (repo / "id.txt").write_text(
        f"-----BEGIN RSA PRIVATE KEY-----\n{body}\nshort\n-----END RSA PRIVATE KEY-----\n"
    )
    sandbox = await _watched(repo)
    result = await sandbox.search_files(SearchFilesArgs(pattern=r"^\[REDACTED:private_key\]$"))
    assert [(m.file, m.line) for m in result.matches] == [("id.txt", n) for n in (1, 2, 3, 4)]
    assert await _files(sandbox, "short") == []


async def test_rg_reaching_its_time_limit_gives_what_it_listed(repo: Path) -> None:
    rg = find_ripgrep()
    assert rg is not None
    cmd = [rg, "--files-with-matches", "--null", "needle", "."]
    assert await rg_files_with_matches(cmd, repo, time.monotonic()) == ([], False)
    names, complete = await rg_files_with_matches(cmd, repo, math.inf) or ([], False)
    assert complete and sorted(names) == ["README.md", "notes.txt", "pkg/util.py"]


async def test_a_build_outlives_the_search_that_gave_up_on_it(repo: Path, monkeypatch) -> None:
    (repo / "app.py").write_text(f'AWS = "{KEY}"\n')
    sandbox = await _watched(repo)
    monkeypatch.setattr(search_files, "NARROWING_SHARE", 0.0)
    early = await sandbox.search_files(SearchFilesArgs(pattern=REDACTED))
    assert (early.matches, early.truncated) == ([], True)
    monkeypatch.undo()
    result = await sandbox.search_files(SearchFilesArgs(pattern=REDACTED))
    assert ([m.file for m in result.matches], result.truncated) == (["app.py"], False)


async def test_long_changed_lines_are_kept_compressed_and_still_found(repo: Path) -> None:
    """A file whose changed lines run past PACK_LINES_BYTES (a minified bundle, say) is
    kept zlib-compressed in the index, and a match only redaction makes is found there."""
    many = "".join(f'AWS_{i} = "{KEY}"\n' for i in range(3000))
    (repo / "bundle.py").write_text(many)
    (repo / "settings.py").write_text(f'AWS = "{KEY}"\n')
    sandbox = await _watched(repo)
    last = r"^AWS_2999 = \"\[REDACTED:aws_access_key\]\"$"
    assert await _files(sandbox, last) == ["bundle.py"]
    assert await _files(sandbox, REDACTED) == ["settings.py"]
    index = sandbox._search.secrets._lines
    assert isinstance(index["bundle.py"], search_secrets.Packed)
    assert len(index["bundle.py"]) < search_secrets.PACK_LINES_BYTES / 4
    assert not isinstance(index["settings.py"], search_secrets.Packed)
