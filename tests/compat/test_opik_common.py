"""Opik's tests of the helpers its handlers share (test_common.py in comet-ml/opik, SDK 2.2.122:
validate_path, revalidate_path, is_binary, resolve_text_file), ported to the command each helper
serves (ReadFile, which every one of them guards); plus the sensitive-path cases of Opik's newer
test_path_utils.py, where Opik adopted the code we use (its other cases repeat these)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from opik_compat_kit import code_of, commit, run


async def read(root: Path, path: str) -> str:
    return (await run(root, "ReadFile", {"path": path}))["content"]


# --- validate_path --------------------------------------------------------------------------------


async def test_validate_path__relative_path__resolves_correctly(repo: Path) -> None:
    (repo / "src").mkdir()
    (repo / "src" / "agent.py").write_text("code")
    commit(repo)
    assert await read(repo, "src/agent.py") == "code"


async def test_validate_path__absolute_inside_repo__returns_path(repo: Path) -> None:
    """DELIBERATE: every path the platform names is relative to the root; an absolute one is
    refused whatever it points to, so no path the platform sends can name the machine's layout
    (Opik accepts an absolute path inside its root)."""
    (repo / "file.py").write_text("x")
    commit(repo)
    assert await code_of(repo, "ReadFile", {"path": str(repo / "file.py")}) == "path_traversal"


async def test_validate_path__dotdot_traversal__raises_error(repo: Path) -> None:
    assert await code_of(repo, "ReadFile", {"path": "../../etc/passwd"}) == "path_traversal"


async def test_validate_path__absolute_outside_repo__raises_error(repo: Path) -> None:
    assert await code_of(repo, "ReadFile", {"path": "/etc/passwd"}) == "path_traversal"


async def test_validate_path__symlink_escape__raises_error(repo: Path, tmp_path: Path) -> None:
    evil_target = tmp_path / "evil.txt"
    evil_target.write_text("secret")
    (repo / "link.txt").symlink_to(evil_target)
    commit(repo)
    assert await code_of(repo, "ReadFile", {"path": "link.txt"}) == "path_traversal"


async def test_validate_path__symlink_inside_repo__returns_resolved(repo: Path) -> None:
    (repo / "real.py").write_text("code")
    (repo / "link.py").symlink_to(repo / "real.py")
    commit(repo)
    assert await read(repo, "link.py") == "code"


async def test_validate_path__empty_path__raises_error(repo: Path) -> None:
    assert await code_of(repo, "ReadFile", {"path": ""}) == "path_traversal"


async def test_validate_path__normal_file__returns_path(repo: Path) -> None:
    (repo / "app.py").write_text("print('hi')")
    commit(repo)
    assert await read(repo, "app.py") == "print('hi')"


# --- revalidate_path (the re-check at I/O time) ---------------------------------------------------


async def test_revalidate_path__valid_path__no_error(repo: Path) -> None:
    (repo / "file.py").write_text("x")
    commit(repo)
    assert await read(repo, "file.py") == "x"


async def test_revalidate_path__outside_repo__raises_error(repo: Path, tmp_path: Path) -> None:
    """A checked file swapped for a link out of the root before the read: refused at open."""
    (tmp_path / "passwd").write_text("root:x:0:0\n")
    (repo / "file.py").write_text("x")
    commit(repo)
    os.unlink(repo / "file.py")
    (repo / "file.py").symlink_to(tmp_path / "passwd")
    assert await code_of(repo, "ReadFile", {"path": "file.py"}) == "path_traversal"


# --- is_binary ------------------------------------------------------------------------------------


async def test_is_binary__text_file__returns_false(repo: Path) -> None:
    (repo / "code.py").write_text("def hello(): pass")
    commit(repo)
    assert await read(repo, "code.py") == "def hello(): pass"


async def test_is_binary__null_bytes__returns_true(repo: Path) -> None:
    (repo / "binary.dat").write_bytes(b"header\x00\x01\x02data")
    commit(repo)
    assert await code_of(repo, "ReadFile", {"path": "binary.dat"}) == "binary_file"


async def test_is_binary__empty_file__returns_false(repo: Path) -> None:
    (repo / "empty").write_text("")
    commit(repo)
    assert await read(repo, "empty") == ""


async def test_is_binary__nonexistent_file__returns_false(repo: Path) -> None:
    """Opik's is_binary says False for a missing file; the command then says file_not_found."""
    assert await code_of(repo, "ReadFile", {"path": "nope"}) == "file_not_found"


# --- resolve_text_file ----------------------------------------------------------------------------


async def test_resolve_text_file__directory_path__raises_error(repo: Path) -> None:
    (repo / "mydir").mkdir()
    (repo / "mydir" / "inside.py").write_text("x")
    commit(repo)
    assert await code_of(repo, "ReadFile", {"path": "mydir"}) == "file_not_found"


# --- sensitive paths (Opik's newer path_utils) ----------------------------------------------------


@pytest.mark.parametrize(
    ("opik_test", "name"),
    [
        ("test_sensitive_env__raises", ".env"),
        ("test_sensitive_env_variant__raises", ".env.local"),
        ("test_sensitive_pem__raises", "cert.pem"),
        ("test_sensitive_key__raises", "private.key"),
        ("test_sensitive_nested__raises", "config/secrets.json"),
    ],
)
async def test_path_utils_sensitive(repo: Path, opik_test: str, name: str) -> None:
    (repo / name).parent.mkdir(exist_ok=True)
    (repo / name).write_text("SECRET=foo")
    commit(repo)
    assert await code_of(repo, "ReadFile", {"path": name}) == "sensitive_path", opik_test
