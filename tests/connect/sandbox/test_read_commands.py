"""ReadFile, ListFiles and SearchFiles through read_handlers, on real git repos in tmp dirs."""

from __future__ import annotations

import asyncio
import os
import threading
import tracemalloc
from pathlib import Path

import pytest

from opik_connect.config import ProjectConfig
from opik_connect.connect.sandbox import file_window, list_entries, search_files, search_scan
from opik_connect.connect.sandbox import read_commands as bridge_commands
from opik_connect.connect.sandbox.linear_regex import compile_line_search
from opik_connect.connect.sandbox.policy import PathPolicy
from opik_connect.connect.sandbox.read_commands import Sandbox, read_handlers
from opik_connect.connect.sandbox.ripgrep import find_ripgrep
from opik_connect.connect.sandbox.search_scan import scan_files
from opik_connect.git_runner import NotAGitRepository
from opik_connect.protocol import (
    BridgeError,
    ErrorCode,
    ListFilesArgs,
    ListFilesResult,
    ReadFileArgs,
    SearchFilesArgs,
)
from tests.sandbox_repo import git, make_repo

SK_ANT = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "proj")


@pytest.fixture
async def sandbox(repo: Path) -> Sandbox:
    return await Sandbox.open(repo, ProjectConfig(deny=["private_notes/**"]))


async def error_code(coro) -> ErrorCode:
    with pytest.raises(BridgeError) as info:
        await coro
    return info.value.code


# --- opening ------------------------------------------------------------------------------------


async def test_outside_a_git_work_tree_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(NotAGitRepository, match="not inside a git work tree"):
        await Sandbox.open(tmp_path, ProjectConfig())


async def test_summary_counts_visible_files_and_names_branch_and_head(
    sandbox: Sandbox, repo: Path
) -> None:
    (repo / ".env").write_text("A=1\n")
    summary = await sandbox.summary()
    # .gitignore, README.md, app.py, pkg/util.py tracked; notes.txt untracked; not .env, logs.
    assert summary.visible_files == 5
    assert summary.branch == "main"
    assert summary.head == git(repo, "rev-parse", "HEAD").strip()
    assert summary.root == str(await asyncio.to_thread(repo.resolve))


async def test_handlers_map_the_three_read_commands(sandbox: Sandbox) -> None:
    handlers = read_handlers(sandbox)
    assert set(handlers) == {"ReadFile", "ListFiles", "SearchFiles"}
    result = await handlers["ReadFile"](ReadFileArgs(path="app.py"))
    assert result.content.startswith("def handler")


# --- ReadFile -----------------------------------------------------------------------------------


async def test_read_whole_small_file(sandbox: Sandbox) -> None:
    result = await sandbox.read_file(ReadFileArgs(path="pkg/util.py"))
    assert result.content == "import os\n\n\ndef helper():\n    return 'needle'\n"
    assert (result.total_lines, result.truncated, result.encoding) == (5, False, "utf-8")
    assert result.redactions == 0


async def test_read_line_range_sets_truncated_honestly(sandbox: Sandbox, repo: Path) -> None:
    (repo / "lines.txt").write_text("".join(f"line {i}\n" for i in range(10)))
    middle = await sandbox.read_file(ReadFileArgs(path="lines.txt", offset=3, limit=2))
    assert middle.content == "line 3\nline 4\n"
    assert (middle.total_lines, middle.truncated) == (10, True)
    tail = await sandbox.read_file(ReadFileArgs(path="lines.txt", offset=8, limit=5))
    assert (tail.content, tail.truncated) == ("line 8\nline 9\n", False)
    beyond = await sandbox.read_file(ReadFileArgs(path="lines.txt", offset=50))
    assert (beyond.content, beyond.total_lines, beyond.truncated) == ("", 10, False)


async def test_last_line_without_newline_is_counted(sandbox: Sandbox, repo: Path) -> None:
    (repo / "nonl.txt").write_text("a\nb")
    result = await sandbox.read_file(ReadFileArgs(path="nonl.txt"))
    assert (result.content, result.total_lines) == ("a\nb", 2)
    (repo / "empty.txt").write_text("")
    empty = await sandbox.read_file(ReadFileArgs(path="empty.txt"))
    assert (empty.content, empty.total_lines, empty.truncated) == ("", 0, False)


def write_fifty_megabytes(path: Path) -> None:
    """A million 50-byte lines; block 70 is numbered so the window can be checked."""
    filler = (b"y" * 49 + b"\n") * 10_000
    numbered = b"".join(b"%08d%s\n" % (700_000 + i, b"x" * 41) for i in range(10_000))
    with path.open("wb") as handle:
        for block in range(100):
            handle.write(numbered if block == 70 else filler)


@pytest.mark.timeout(60)
async def test_fifty_megabyte_file_is_read_by_range_in_bounded_memory(
    sandbox: Sandbox, repo: Path
) -> None:
    await asyncio.to_thread(write_fifty_megabytes, repo / "big.txt")
    assert (repo / "big.txt").stat().st_size == 50_000_000
    tracemalloc.start()
    try:
        result = await sandbox.read_file(ReadFileArgs(path="big.txt", offset=700_000, limit=3))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.total_lines == 1_000_000
    assert result.truncated
    assert result.content.splitlines()[0].startswith("00700000")
    assert len(result.content.splitlines()) == 3
    assert peak < 8_000_000, f"peak {peak} bytes: the file was not streamed"


async def test_a_long_line_comes_whole_up_to_opiks_content_cap(
    sandbox: Sandbox, repo: Path
) -> None:
    (repo / "min.js").write_text("a" * 100_000 + "\nnext\n")
    result = await sandbox.read_file(ReadFileArgs(path="min.js"))
    assert result.content == "a" * 100_000 + "\nnext\n"
    assert result.truncated is False
    (repo / "huge.js").write_text("b" * 600_000 + "\nnext\n")
    huge = await sandbox.read_file(ReadFileArgs(path="huge.js"))
    assert huge.content == "b" * file_window.MAX_CONTENT_CHARS
    assert (huge.total_lines, huge.truncated) == (2, True)


async def test_content_that_encodes_large_is_cut_to_fit_one_frame(
    sandbox: Sandbox, repo: Path
) -> None:
    """512,000 emoji would be 2 MB of JSON: the content is cut to the frame's budget instead."""
    (repo / "emoji.txt").write_text("\U0001f600" * 400_000 + "\n\x01" * 10)
    result = await sandbox.read_file(ReadFileArgs(path="emoji.txt"))
    wire = len(result.model_dump_json().encode())
    assert wire <= file_window.MAX_CONTENT_WIRE_BYTES + 1000
    assert result.truncated and len(result.content) > 200_000
    assert set(result.content) == {"\U0001f600"}


async def test_a_line_longer_than_what_is_kept_is_truncated_even_if_redaction_shrinks_it(
    sandbox: Sandbox, repo: Path
) -> None:
    (repo / "one.txt").write_text("c" * (file_window.MAX_LINE_BYTES + 10))
    result = await sandbox.read_file(ReadFileArgs(path="one.txt"))
    assert result.truncated and len(result.content) == file_window.MAX_CONTENT_CHARS


async def test_binary_file(sandbox: Sandbox, repo: Path) -> None:
    (repo / "blob.bin").write_bytes(b"PNG\x00\x01\x02" + b"text" * 10)
    assert await error_code(sandbox.read_file(ReadFileArgs(path="blob.bin"))) == (
        ErrorCode.BINARY_FILE
    )


async def test_latin1_file_is_binary(sandbox: Sandbox, repo: Path) -> None:
    (repo / "latin.txt").write_bytes("café olé\n".encode("latin-1"))
    assert await error_code(sandbox.read_file(ReadFileArgs(path="latin.txt"))) == (
        ErrorCode.BINARY_FILE
    )


async def test_ignored_files_are_not_found(sandbox: Sandbox) -> None:
    for path in ("debug.log", "build/out.py"):
        assert await error_code(sandbox.read_file(ReadFileArgs(path=path))) == (
            ErrorCode.FILE_NOT_FOUND
        )


async def test_tracked_file_matching_an_ignore_rule_stays_visible(
    sandbox: Sandbox, repo: Path
) -> None:
    (repo / "forced.txt").write_text("tracked though ignored\n")
    git(repo, "add", "-f", "forced.txt")
    result = await sandbox.read_file(ReadFileArgs(path="forced.txt"))
    assert result.content == "tracked though ignored\n"


async def test_new_untracked_file_is_visible_at_once(sandbox: Sandbox, repo: Path) -> None:
    await sandbox.read_file(ReadFileArgs(path="app.py"))  # warms the cached file list
    (repo / "fresh.py").write_text("fresh\n")
    assert (await sandbox.read_file(ReadFileArgs(path="fresh.py"))).content == "fresh\n"


async def test_missing_file_and_directory(sandbox: Sandbox) -> None:
    assert await error_code(sandbox.read_file(ReadFileArgs(path="nope.py"))) == (
        ErrorCode.FILE_NOT_FOUND
    )
    for directory in ("pkg", "."):  # Opik's code for a directory
        assert await error_code(sandbox.read_file(ReadFileArgs(path=directory))) == (
            ErrorCode.FILE_NOT_FOUND
        )
    assert await error_code(sandbox.read_file(ReadFileArgs(path=""))) == ErrorCode.PATH_TRAVERSAL


async def test_limit_is_clamped_to_opiks_2000_lines(sandbox: Sandbox, repo: Path) -> None:
    (repo / "long.txt").write_text("x\n" * 2500)
    result = await sandbox.read_file(ReadFileArgs(path="long.txt", limit=5000))
    assert (len(result.content.splitlines()), result.total_lines, result.truncated) == (
        2000,
        2500,
        True,
    )


@pytest.mark.parametrize(
    "path", ["../outside.txt", "pkg/../../outside.txt", "/etc/passwd", "app.py\0x"]
)
async def test_traversal_is_refused(sandbox: Sandbox, path: str) -> None:
    assert await error_code(sandbox.read_file(ReadFileArgs(path=path))) == (
        ErrorCode.PATH_TRAVERSAL
    )


async def test_tracked_symlinks_out_of_the_root_are_traversal(
    sandbox: Sandbox, repo: Path, tmp_path: Path
) -> None:
    sibling = tmp_path / "proj-other"
    sibling.mkdir()
    (sibling / "loot.txt").write_text("outside\n")
    os.symlink(sibling / "loot.txt", repo / "file_link")
    os.symlink(sibling, repo / "dir_link")
    git(repo, "add", "file_link", "dir_link")
    for path in ("file_link", "dir_link/loot.txt"):
        code = await error_code(sandbox.read_file(ReadFileArgs(path=path)))
        assert code in (ErrorCode.PATH_TRAVERSAL, ErrorCode.FILE_NOT_FOUND)
    assert await error_code(sandbox.read_file(ReadFileArgs(path="file_link"))) == (
        ErrorCode.PATH_TRAVERSAL
    )
    listed = (await sandbox.list_files(ListFilesArgs())).files
    assert "file_link" not in listed and "dir_link" not in listed


@pytest.mark.timeout(15)
async def test_tracked_path_replaced_by_fifo_is_refused_without_hanging(
    sandbox: Sandbox, repo: Path
) -> None:
    os.unlink(repo / "app.py")
    os.mkfifo(repo / "app.py")
    code = await asyncio.wait_for(error_code(sandbox.read_file(ReadFileArgs(path="app.py"))), 5)
    assert code == ErrorCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    "name",
    [
        ".env",
        ".env.local",
        "server.pem",
        "tls.key",
        "cert.p12",
        "id_rsa",
        "id_ed25519.pub",
        ".netrc",
        ".npmrc",
        ".pypirc",
        "credentials.json",
        "secrets.yaml",
        "private_notes/todo.md",
    ],
)
async def test_sensitive_files_are_refused_and_never_listed_or_searched(
    sandbox: Sandbox, repo: Path, name: str
) -> None:
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text("needle sensitive\n")
    assert await error_code(sandbox.read_file(ReadFileArgs(path=name))) == (
        ErrorCode.SENSITIVE_PATH
    )
    assert name not in (await sandbox.list_files(ListFilesArgs())).files
    found = await sandbox.search_files(SearchFilesArgs(pattern="needle sensitive"))
    assert found.matches == [] and found.total_matches == 0


async def test_git_internals_are_sensitive(sandbox: Sandbox) -> None:
    for path in (".git/config", ".git/HEAD"):
        assert await error_code(sandbox.read_file(ReadFileArgs(path=path))) == (
            ErrorCode.SENSITIVE_PATH
        )


async def test_secrets_are_redacted_in_read_file(sandbox: Sandbox, repo: Path) -> None:
    (repo / "settings.py").write_text(f'KEY = "{SK_ANT}"\npassword = "hunter2"\nDEBUG = True\n')
    result = await sandbox.read_file(ReadFileArgs(path="settings.py"))
    assert SK_ANT not in result.content and "hunter2" not in result.content
    assert result.redactions == 2
    assert "DEBUG = True" in result.content


async def test_line_range_inside_a_private_key_block_is_redacted(
    sandbox: Sandbox, repo: Path
) -> None:
    body = "".join(f"QUJD{i:02d}ZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY=\n" for i in range(6))
    (repo / "fixture.py").write_text(
        "KEY = '''\n-----BEGIN RSA PRIVATE KEY-----\n"
        + body
        + "-----END RSA PRIVATE KEY-----\n'''\nafter = 1\n"
    )
    middle = await sandbox.read_file(ReadFileArgs(path="fixture.py", offset=3, limit=2))
    assert "QUJD" not in middle.content
    assert middle.redactions >= 1
    cut_start = await sandbox.read_file(ReadFileArgs(path="fixture.py", offset=0, limit=4))
    assert "QUJD" not in cut_start.content and "KEY = '''" in cut_start.content
    cut_end = await sandbox.read_file(ReadFileArgs(path="fixture.py", offset=5, limit=10))
    assert "QUJD" not in cut_end.content and "after = 1" in cut_end.content


# --- ListFiles ----------------------------------------------------------------------------------


async def test_list_files_shows_git_view(sandbox: Sandbox) -> None:
    result = await sandbox.list_files(ListFilesArgs())
    assert result.files == ["pkg/", ".gitignore", "app.py", "notes.txt", "README.md"]
    assert (result.total, result.truncated) == (5, False)


async def test_list_files_pattern_path_and_depth(sandbox: Sandbox) -> None:
    assert (await sandbox.list_files(ListFilesArgs(pattern="*.py", depth=2))).files == [
        "pkg/",
        "app.py",
        "pkg/util.py",
    ]
    assert (await sandbox.list_files(ListFilesArgs(pattern="*.py"))).files == ["pkg/", "app.py"]
    assert (await sandbox.list_files(ListFilesArgs(path="pkg"))).files == ["util.py"]


async def test_list_files_depth_skips_subtrees_and_noise(sandbox: Sandbox, repo: Path) -> None:
    for name in ("a/b/c/d.py", "a/b/e.py", "a/node_modules/x.js", "a.txt", "a-b/f.py"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("x\n")
    listed = await sandbox.list_files(ListFilesArgs(path="", depth=2))
    assert listed.files[:4] == ["a-b/", "a/", "a/b/", "pkg/"]  # Opik sorts by lower-cased text
    assert "a-b/f.py" in listed.files and "a.txt" in listed.files
    assert not any("node_modules" in f or "c/" in f or "e.py" in f for f in listed.files)
    deep = await sandbox.list_files(ListFilesArgs(path="a", depth=5))
    assert deep.files == ["b/", "b/c/", "b/c/d.py", "b/e.py"]


async def test_a_deep_listing_of_a_big_repo_runs_off_the_loop_with_the_same_answer(
    sandbox: Sandbox, monkeypatch
) -> None:
    args = ListFilesArgs(depth=3, pattern="*.py")
    inline = await sandbox.list_files(args)
    monkeypatch.setattr(bridge_commands, "INLINE_LIST_FILES", 0)
    threaded = threaded_only(bridge_commands.list_entries)
    monkeypatch.setattr(bridge_commands, "list_entries", threaded)
    assert (
        await sandbox.list_files(args)
        == inline
        == ListFilesResult(files=["pkg/", "app.py", "pkg/util.py"], total=3, truncated=False)
    )


def threaded_only(function):
    def off_the_loop(*args):
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()
        return function(*args)

    return off_the_loop


async def test_a_directory_with_no_visible_file_is_not_found(sandbox: Sandbox) -> None:
    assert await error_code(sandbox.list_files(ListFilesArgs(path="build"))) == (
        ErrorCode.FILE_NOT_FOUND
    )


@pytest.mark.parametrize("depth", [0, 6])
def test_list_files_depth_outside_1_to_5_is_refused(depth: int) -> None:
    with pytest.raises(ValueError, match="depth"):
        ListFilesArgs(depth=depth)


async def test_list_files_errors(sandbox: Sandbox) -> None:
    assert await error_code(sandbox.list_files(ListFilesArgs(path="../x"))) == (
        ErrorCode.PATH_TRAVERSAL
    )
    assert await error_code(sandbox.list_files(ListFilesArgs(path="nope"))) == (
        ErrorCode.FILE_NOT_FOUND
    )
    assert await error_code(sandbox.list_files(ListFilesArgs(path=".git"))) == (
        ErrorCode.SENSITIVE_PATH
    )


async def test_list_files_is_capped_with_honest_total(sandbox: Sandbox, repo: Path) -> None:
    many = repo / "many"
    many.mkdir()
    for i in range(1005):
        (many / f"f{i}.txt").write_text("x")
    result = await sandbox.list_files(ListFilesArgs(path="many"))
    assert len(result.files) == list_entries.MAX_LIST_ENTRIES
    assert (result.total, result.truncated) == (1005, True)


# --- SearchFiles --------------------------------------------------------------------------------


@pytest.fixture(params=["rg", "git-grep"])
async def searcher(request, repo: Path) -> Sandbox:
    """SearchFiles with ripgrep and with the git grep fallback: same visible results."""
    ripgrep = "auto" if request.param == "rg" else None
    sandbox = await Sandbox.open(repo, ProjectConfig(), ripgrep=ripgrep)
    if request.param == "rg":
        assert sandbox.rg is not None
    return sandbox


async def test_search_finds_only_visible_files_with_context(searcher: Sandbox) -> None:
    result = await searcher.search_files(SearchFilesArgs(pattern="needle"))
    assert [(m.file, m.line) for m in result.matches] == [
        ("README.md", 2),
        ("notes.txt", 1),
        ("pkg/util.py", 5),
    ]
    util = result.matches[2]
    assert util.content == "    return 'needle'"
    assert util.context_before == ["", "", "def helper():"]
    assert util.context_after == []
    assert (result.total_matches, result.truncated) == (3, False)


async def test_search_glob_and_path(searcher: Sandbox) -> None:
    by_glob = await searcher.search_files(SearchFilesArgs(pattern="needle", glob="*.py"))
    assert [m.file for m in by_glob.matches] == ["pkg/util.py"]
    by_path = await searcher.search_files(SearchFilesArgs(pattern="needle", path="pkg"))
    assert [m.file for m in by_path.matches] == ["pkg/util.py"]


async def test_search_includes_tracked_files_matching_an_ignore_rule(
    searcher: Sandbox, repo: Path
) -> None:
    (repo / "forced.txt").write_text("needle forced\n")
    git(repo, "add", "-f", "forced.txt")
    result = await searcher.search_files(SearchFilesArgs(pattern="needle forced"))
    assert [m.file for m in result.matches] == ["forced.txt"]


async def test_search_skips_binary_and_latin1_files(searcher: Sandbox, repo: Path) -> None:
    (repo / "blob.bin").write_bytes(b"needle\x00binary")
    (repo / "latin.txt").write_bytes("needle café\n".encode("latin-1"))
    result = await searcher.search_files(SearchFilesArgs(pattern="needle", glob="*.{bin,txt}"))
    files = {m.file for m in result.matches}
    assert "blob.bin" not in files and "latin.txt" not in files


async def test_search_is_capped_with_honest_total(searcher: Sandbox, repo: Path) -> None:
    (repo / "hay.txt").write_text("straw\n" * 250)
    result = await searcher.search_files(SearchFilesArgs(pattern="straw"))
    assert len(result.matches) == search_scan.MAX_SEARCH_MATCHES
    assert (result.total_matches, result.truncated) == (250, True)


async def test_search_redacts_content_and_context(searcher: Sandbox, repo: Path) -> None:
    (repo / "conf.py").write_text(f'api_key = "{SK_ANT}"\nmarker_line = 1\npassword = "pw123"\n')
    result = await searcher.search_files(SearchFilesArgs(pattern="marker_line"))
    (match,) = result.matches
    assert SK_ANT not in match.context_before[0] and "[REDACTED:" in match.context_before[0]
    assert "pw123" not in match.context_after[0]
    assert result.redactions == 2


async def test_search_cannot_probe_a_secret_character_by_character(
    searcher: Sandbox, repo: Path
) -> None:
    (repo / "conf.py").write_text(f'ANTHROPIC = "{SK_ANT}"\n')
    probe = await searcher.search_files(SearchFilesArgs(pattern="sk-ant-api03-AbC"))
    assert (probe.matches, probe.total_matches) == ([], 0)
    wrong = await searcher.search_files(SearchFilesArgs(pattern="sk-ant-api03-XbC"))
    assert wrong.total_matches == probe.total_matches
    visible = await searcher.search_files(SearchFilesArgs(pattern="ANTHROPIC"))
    assert visible.total_matches == 1 and SK_ANT not in visible.matches[0].content


@pytest.mark.parametrize("pattern", ["(unclosed", "a\nb", "x\0y", "(?<=a)b", r"(a)\1"])
async def test_search_invalid_regex(searcher: Sandbox, pattern: str) -> None:
    code = await error_code(searcher.search_files(SearchFilesArgs(pattern=pattern)))
    assert code == ErrorCode.SEARCH_FAILED


async def test_search_pattern_and_glob_that_look_like_flags(searcher: Sandbox, repo: Path) -> None:
    (repo / "dash.txt").write_text("-foo here\n")
    found = await searcher.search_files(SearchFilesArgs(pattern="-foo"))
    assert [(m.file, m.line) for m in found.matches] == [("dash.txt", 1)]
    flag_glob = await searcher.search_files(SearchFilesArgs(pattern="needle", glob="--files"))
    assert flag_glob.matches == []


async def test_search_in_one_file(searcher: Sandbox) -> None:
    result = await searcher.search_files(SearchFilesArgs(pattern="needle", path="README.md"))
    assert [(m.file, m.line) for m in result.matches] == [("README.md", 2)]


async def test_search_and_list_through_a_symlinked_dir(
    searcher: Sandbox, repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "proj-out"
    outside.mkdir()
    (outside / "loot.py").write_text("needle outside\n")
    os.symlink(outside, repo / "out_link")
    os.symlink(repo / "pkg", repo / "pkg_link")
    for call in (
        searcher.search_files(SearchFilesArgs(pattern="needle", path="out_link")),
        searcher.list_files(ListFilesArgs(path="out_link")),
    ):
        assert await error_code(call) == ErrorCode.PATH_TRAVERSAL
    inside = await searcher.search_files(SearchFilesArgs(pattern="needle", path="pkg_link"))
    assert [m.file for m in inside.matches] == ["pkg/util.py"]
    everywhere = await searcher.search_files(SearchFilesArgs(pattern="needle outside"))
    assert everywhere.total_matches == 0


async def test_search_path_errors(searcher: Sandbox) -> None:
    assert await error_code(searcher.search_files(SearchFilesArgs(pattern="x", path="../.."))) == (
        ErrorCode.PATH_TRAVERSAL
    )
    assert await error_code(searcher.search_files(SearchFilesArgs(pattern="x", path=".git"))) == (
        ErrorCode.SENSITIVE_PATH
    )


async def test_search_reaching_its_time_limit_returns_what_it_found(
    searcher: Sandbox, monkeypatch
) -> None:
    await searcher.listings.current()
    monkeypatch.setattr(search_files, "SEARCH_TIMEOUT_S", 0.000001)
    result = await searcher.search_files(SearchFilesArgs(pattern="needle"))
    assert result.truncated
    assert result.total_matches >= len(result.matches)
    monkeypatch.undo()  # the next search, with its time, finishes the work this one started
    full = await searcher.search_files(SearchFilesArgs(pattern="needle"))
    assert (len(full.matches), full.truncated) == (3, False)


async def test_a_common_pattern_stops_after_the_first_page(searcher: Sandbox, repo: Path) -> None:
    for i in range(30):
        (repo / f"hay{i:02d}.txt").write_text("straw\n" * 10)
    result = await searcher.search_files(SearchFilesArgs(pattern="straw"))
    assert len(result.matches) == search_scan.MAX_SEARCH_MATCHES
    assert result.truncated
    assert (result.total_matches, result.matches[-1].file) == (100, "hay09.txt")


def test_a_scan_at_its_deadline_returns_a_truncated_prefix(repo: Path) -> None:
    (repo / "a.txt").write_text("straw\n")
    result = scan_files(
        PathPolicy(repo),
        ["a.txt"],
        compile_line_search("straw"),
        frozenset(["a.txt"]),
        threading.Event(),
        deadline=0.0,
    )
    assert (result.matches, result.total_matches, result.truncated) == ([], 0, True)


@pytest.mark.parametrize("pattern", ["", "a" * 501])
async def test_empty_or_too_long_pattern_is_match_not_found(
    searcher: Sandbox, pattern: str
) -> None:
    code = await error_code(searcher.search_files(SearchFilesArgs(pattern=pattern)))
    assert code == ErrorCode.MATCH_NOT_FOUND


def test_ripgrep_is_found_next_to_the_interpreter() -> None:
    found = find_ripgrep()
    assert found is not None and os.access(found, os.X_OK)
