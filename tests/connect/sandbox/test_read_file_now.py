"""ReadFile's answer-at-once path gives exactly what awaiting ReadFile gives, on a real repo."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opik_connect.config import ProjectConfig
from opik_connect.connect.command_handlers import InlineHandler
from opik_connect.connect.sandbox import file_window
from opik_connect.connect.sandbox.read_commands import INLINE_READ_BYTES, Sandbox, read_handlers
from opik_connect.protocol import BridgeError, ErrorBody, ReadFileArgs, ReadFileResult
from tests.sandbox_repo import git, make_repo

PATHS = [
    "app.py",
    "pkg/util.py",
    "./pkg//util.py",
    "README.md",
    "notes.txt",
    "debug.log",
    "build/out.py",
    "missing.py",
    "pkg",
    "",
    ".",
    "../app.py",
    "/etc/passwd",
    ".env",
    "secrets.py",
    "settings_db.py",
    "binary.bin",
    "latin1.txt",
    "link_to_app.py",
    "link_out.txt",
    "long.txt",
    "key.pem.txt",
    "private_notes/plan.md",
    "untracked_new.py",
    "crlf.txt",
    "no_final_newline.txt",
    "cut_character.txt",
    "key_in_middle.py",
    "at_threshold.txt",
    "over_threshold.txt",
]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """make_repo plus files that take every branch of ReadFile: secrets, binary, non-UTF-8,
    symlinks in and out of the root, a long file, a key block, a denied directory; and the
    edges of reading a small file whole: CRLF, non-ASCII without a final newline, a character
    cut at the end, a key block windows start inside, sizes at and over the threshold."""
    root = make_repo(tmp_path_factory.mktemp("now") / "proj")
    (root / ".env").write_text("TOKEN=abcdefgh12345678\n")
    (root / "settings_db.py").write_text(
        "import os\nDB = 'postgres://admin:hunter2hunter2@db/x'\n"
        "api_key = 'sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345'\nURL = 'https://example.com'\n"
    )
    (root / "binary.bin").write_bytes(b"abc\0def")
    (root / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (root / "long.txt").write_text(
        "".join(f"line {i} password = 'pw{i}x{i}y{i}'\n" for i in range(300))
    )
    (root / "key.pem.txt").write_text(
        "before\n-----BEGIN RSA PRIVATE KEY-----\n" + "QUJD" * 16 + "\n"
        "-----END RSA PRIVATE KEY-----\nafter\n"
    )
    (root / "crlf.txt").write_bytes(
        b"".join(b"row %d token = 'v%dx%d'\r\n" % (i, i, i) for i in range(40))
    )
    (root / "no_final_newline.txt").write_text(
        "".join(f"ligne {i} é €\n" for i in range(30)) + "fin"
    )
    (root / "cut_character.txt").write_bytes(b"line\n" * 20 + b"\xe2\x82")
    (root / "key_in_middle.py").write_text(
        "".join(f"x{i} = {i}\n" for i in range(100))
        + "KEY = '''\n-----BEGIN RSA PRIVATE KEY-----\n"
        + "".join(f"QUJD{i:02d}ZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY=\n" for i in range(150))
        + "-----END RSA PRIVATE KEY-----\n'''\n"
        + "".join(f"y{i} = 'https://u:pw{i}secret@h/'\n" for i in range(60))
    )
    filler = "x" * 99 + "\n"
    at_threshold = filler * (INLINE_READ_BYTES // 100) + "é" * (INLINE_READ_BYTES % 100 // 2)
    assert len(at_threshold.encode()) == INLINE_READ_BYTES
    (root / "at_threshold.txt").write_text(at_threshold)
    (root / "over_threshold.txt").write_text(at_threshold + "z")
    (root / "private_notes").mkdir()
    (root / "private_notes" / "plan.md").write_text("denied by config\n")
    os.symlink("app.py", root / "link_to_app.py")
    outside = root.parent / "outside.txt"
    outside.write_text("outside\n")
    os.symlink(outside, root / "link_out.txt")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "more")
    (root / "untracked_new.py").write_text("x = 1\n")
    return root


Outcome = ReadFileResult | ErrorBody | None


def outcome_now(sandbox: Sandbox, args: ReadFileArgs) -> Outcome:
    try:
        return sandbox.read_file_now(args)
    except BridgeError as exc:
        return exc.to_body()


_SANDBOXES: dict[int, Sandbox] = {}


async def shared_sandbox(repo: Path) -> Sandbox:
    """One sandbox per event loop (per test): its listing cache is what the examples share."""
    key = id(asyncio.get_running_loop())
    if key not in _SANDBOXES:
        _SANDBOXES[key] = await Sandbox.open(repo, ProjectConfig(deny=["private_notes/**"]))
    return _SANDBOXES[key]


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(PATHS),
    offset=st.integers(0, 320),
    limit=st.integers(1, 400),
)
async def test_answer_at_once_equals_awaiting(repo: Path, path: str, offset: int, limit: int):
    """Before and after the awaited call (which fills git's list): None, or the same answer;
    and the answer streaming the file gives (a small file is otherwise read whole)."""
    sandbox = await shared_sandbox(repo)
    args = ReadFileArgs(path=path, offset=offset, limit=limit)
    before = outcome_now(sandbox, args)
    awaited = await outcome_awaited(sandbox, args)
    assert before in (None, awaited)
    assert outcome_now(sandbox, args) in (None, awaited)
    with mock.patch.object(file_window, "WHOLE_READ_BYTES", -1):
        assert await outcome_awaited(sandbox, args) == awaited


async def outcome_awaited(sandbox: Sandbox, args: ReadFileArgs) -> Outcome:
    try:
        return await sandbox.read_file(args)
    except BridgeError as exc:
        return exc.to_body()


async def test_a_cached_listing_is_answered_at_once_and_a_cold_one_waits(repo: Path) -> None:
    sandbox = await Sandbox.open(repo, ProjectConfig())
    args = ReadFileArgs(path="settings_db.py")
    assert sandbox.read_file_now(args) is None  # nothing listed yet: git must be asked
    awaited = await sandbox.read_file(args)
    assert awaited.redactions == 2
    assert sandbox.read_file_now(args) == awaited
    sandbox.invalidate()
    assert sandbox.read_file_now(args) is None


async def test_a_symlink_whose_target_git_has_not_listed_waits(repo: Path) -> None:
    """The link is listed, its target is read only once git's list is known to hold it."""
    sandbox = await Sandbox.open(repo, ProjectConfig())
    await sandbox.read_file(ReadFileArgs(path="app.py"))
    assert sandbox.read_file_now(ReadFileArgs(path="link_to_app.py")) == await sandbox.read_file(
        ReadFileArgs(path="app.py")
    )
    with pytest.raises(BridgeError) as info:
        sandbox.read_file_now(ReadFileArgs(path="link_out.txt"))
    assert info.value.code == "path_traversal"


async def test_read_handlers_offer_readfile_at_once(repo: Path) -> None:
    handler = read_handlers(await Sandbox.open(repo, ProjectConfig()))["ReadFile"]
    assert isinstance(handler, InlineHandler)
    assert (await handler(ReadFileArgs(path="app.py"))).content.startswith("def handler")
