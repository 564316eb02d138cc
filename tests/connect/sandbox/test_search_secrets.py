"""The search's secret index: a match that only redaction makes is found without reading every
file that holds a secret, the watcher's batches keep it current, and a stale entry never leaks."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import pytest
from sandbox_repo import make_repo
from search_reads import record_search_reads

from opik_connect.config import ProjectConfig
from opik_connect.connect.sandbox import search_files, search_scan, search_secrets
from opik_connect.connect.sandbox.policy import PathPolicy
from opik_connect.connect.sandbox.read_commands import Sandbox
from opik_connect.connect.sandbox.ripgrep import find_ripgrep, glob_literal, rg_files_with_matches
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


async def test_a_file_redaction_changes_is_searched_in_its_redacted_copy(repo: Path) -> None:
    """ripgrep reads the copy, which holds no secret: a match on a line redaction leaves alone
    is found there, under a path and a glob, and so is a match only redaction makes."""
    many = "".join(f'AWS_{i} = "{KEY}"\n' for i in range(3000))
    (repo / "pkg" / "bundle.py").write_text(many + "def tail():\n    return 'needle'\n")
    (repo / "settings.py").write_text(f'AWS = "{KEY}"\n')
    sandbox = await _watched(repo)
    last = r"^AWS_2999 = \"\[REDACTED:aws_access_key\]\"$"
    assert await _files(sandbox, last) == ["pkg/bundle.py"]
    assert await _files(sandbox, REDACTED) == ["settings.py"]
    under = await sandbox.search_files(SearchFilesArgs(pattern="needle", path="pkg", glob="*.py"))
    assert [(m.file, m.line) for m in under.matches] == [
        ("pkg/bundle.py", 3002),
        ("pkg/util.py", 5),
    ]
    shadows = sandbox._search.secrets.shadow_root
    assert shadows is not None and shadows.stat().st_mode & 0o777 == 0o700
    copies = sorted(str(p.relative_to(shadows)) for p in shadows.rglob("*") if p.is_file())
    assert copies == ["pkg/bundle.py", "settings.py"]
    assert all(KEY.encode() not in (shadows / c).read_bytes() for c in copies)


SECOND_KEY = "AKIAZYXWVUTSRQPONMLK"


async def _candidates(
    repo: Path, patterns: list[str], monkeypatch, path: str = ""
) -> list[list[str]]:
    read = record_search_reads(monkeypatch)
    sandbox = await _watched(repo)
    answers = [await sandbox.search_files(SearchFilesArgs(pattern=p, path=path)) for p in patterns]
    monkeypatch.undo()
    return [[*paths, repr(answer)] for paths, answer in zip(read, answers, strict=True)]


async def test_what_a_search_reads_does_not_depend_on_a_secrets_value(
    tmp_path: Path, monkeypatch
) -> None:
    """Two repos that differ only in a key's value: every search, even one for a prefix of
    either raw key (which ripgrep would find in one repo only), reads the same files and gives
    the same answer, so its cost cannot tell the key one character at a time; also when the
    search names the file itself (ripgrep reads a named file whatever its globs say)."""
    patterns = [k[:n] for n in range(4, len(KEY) + 1) for k in (KEY, SECOND_KEY)]
    patterns += [REDACTED, "AWS", "import os", "needle"]
    seen = []
    for key in (KEY, SECOND_KEY):
        repo = make_repo(tmp_path / key)
        (repo / "settings.py").write_text(f'import os\nAWS = "{key}"\n')
        (repo / "pkg" / "config.py").write_text(f'LOG = "info"\nAWS = "{key}"\n')
        seen.append(await _candidates(repo, patterns, monkeypatch))
        seen.append(await _candidates(repo, patterns, monkeypatch, path="settings.py"))
    assert seen[0] == seen[2] and seen[1] == seen[3]
    by_pattern = dict(zip(patterns, seen[0], strict=True))
    assert by_pattern[KEY[:8]][:-1] == [] and by_pattern["import os"][:-1] == [
        "pkg/util.py",
        "settings.py",
    ]


async def test_a_file_too_large_to_answer_from_stays_out_of_ripgrep(
    tmp_path: Path, monkeypatch
) -> None:
    """A search never answers from a file past the size it reads, so ripgrep never reads one:
    with a key in it, a prefix of the key finds and costs what any other pattern does, and
    without one, its text is not searched for nothing (rg has no --max-filesize: the index
    holds such files by their size)."""
    seen = []
    with monkeypatch.context() as patch:
        patch.setattr(search_scan, "MAX_SEARCH_FILE_BYTES", 4096)
        for key in (KEY, SECOND_KEY):
            repo = make_repo(tmp_path / key)
            (repo / "big.py").write_text(f'AWS = "{key}"\n' + "x = 1\n" * 1000)
            (repo / "data.py").write_text("x = 1\n" * 1000)
            patterns = [KEY[:8], SECOND_KEY[:8], "x = 1"]
            seen.append(await _candidates(repo, patterns, monkeypatch))
    assert seen[0] == seen[1]
    assert [paths[:-1] for paths in seen[0]] == [[], [], []]


async def test_a_file_that_grows_too_large_leaves_ripgreps_view(repo: Path, monkeypatch) -> None:
    monkeypatch.setattr(search_scan, "MAX_SEARCH_FILE_BYTES", 4096)
    read = record_search_reads(monkeypatch)
    sandbox = await _watched(repo)
    (repo / "data.py").write_text("grown = 1\n")
    await sandbox.files_changed(["data.py"])
    assert await _files(sandbox, "grown") == ["data.py"]
    (repo / "data.py").write_text("grown = 1\n" * 1000)
    await sandbox.files_changed(["data.py"])
    assert await _files(sandbox, "grown") == []
    assert read[-1] == [] and sandbox._search.secrets.held["data.py"] is None


async def test_too_many_files_to_skip_reads_every_visible_file(repo: Path, monkeypatch) -> None:
    """Past what rg's command line holds, every visible file is read and redacted: the same
    answers, at the cost of a full read, and still none that depends on the key."""
    (repo / "settings.py").write_text(f'import os\nAWS = "{KEY}"\n')
    read = record_search_reads(monkeypatch)
    monkeypatch.setattr(search_files, "MAX_SKIP_ARG_BYTES", 0)
    sandbox = await _watched(repo)
    assert await _files(sandbox, "import os") == ["pkg/util.py", "settings.py"]
    assert await _files(sandbox, KEY[:8]) == []
    assert read[0] == read[1] and "settings.py" in read[1] and "app.py" in read[1]


async def test_a_held_file_is_kept_out_of_ripgrep_whatever_its_name(repo: Path) -> None:
    """Glob metacharacters in a name with a secret are escaped: that file alone is skipped
    (its raw key is never matched), and the siblings the bare glob would also match are not."""
    odd = "pkg/we[i]rd *{a,b}?.py"
    (repo / odd).write_text(f'import os\nAWS = "{KEY}"\n')
    for sibling in ("pkg/wei *a1.py", "pkg/wer *b2.py"):
        (repo / sibling).write_text("import os\n")
    sandbox = await _watched(repo)
    assert await _files(sandbox, KEY[:8]) == []
    assert odd in sandbox._search.secrets.held
    rg = find_ripgrep()
    assert rg is not None
    glob = f"--glob=!/{glob_literal(odd)}"
    cmd = [rg, "--files-with-matches", "--null", "--no-config", glob, "import os", "pkg"]
    names, complete = await rg_files_with_matches(cmd, repo) or ([], False)
    assert complete and sorted(names) == ["pkg/util.py", "pkg/wei *a1.py", "pkg/wer *b2.py"]
    assert odd in await _files(sandbox, "import os")


async def test_a_prepared_index_serves_the_first_search(repo: Path, monkeypatch) -> None:
    """prepare_search builds the index (copies included) without a search; the first search
    then runs no secret pass of its own."""
    (repo / "settings.py").write_text(f'AWS = "{KEY}"\n')
    sandbox = await _watched(repo)
    passes: list[object] = []
    secret_pass = search_files.FileSearch._rg_secrets

    async def counting(self, targets, listing):
        passes.append(targets)
        return await secret_pass(self, targets, listing)

    monkeypatch.setattr(search_files.FileSearch, "_rg_secrets", counting)
    await sandbox.prepare_search()
    assert passes == [None] and list(sandbox._search.secrets.held) == ["settings.py"]
    assert await _files(sandbox, REDACTED) == ["settings.py"]
    assert passes == [None]


async def test_changes_lost_during_a_rebuild_are_not_forgotten(tmp_path: Path) -> None:
    """`stale` (the watches came up, or the watcher overflowed) while a full build runs: that
    build may have read the tree before the lost changes, so the next search builds again."""
    index = search_secrets.SecretIndex(PathPolicy(tmp_path, []), lambda: True)
    reading, release = asyncio.Event(), asyncio.Event()
    passes: list[object] = []

    async def find(targets: list[str] | None) -> list[str]:
        passes.append(targets)
        reading.set()
        await release.wait()
        return []

    building = asyncio.ensure_future(index.refresh(frozenset(), math.inf, find))
    await reading.wait()
    index.stale()
    release.set()
    assert await building, "the build this call started answers it"
    assert await index.refresh(frozenset(), math.inf, find)
    assert passes == [None, None], "the stale mark outlived the build that was running"
    assert await index.refresh(frozenset(), math.inf, find) and len(passes) == 2
