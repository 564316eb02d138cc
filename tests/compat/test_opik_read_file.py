"""Opik's ReadFile handler tests (sdks/python/tests/unit/runner/bridge_handlers/
test_read_file.py in comet-ml/opik, SDK 2.2.122), ported to our ReadFile."""

from __future__ import annotations

from pathlib import Path

from opik_compat_kit import code_of, commit, run


async def read_file(root: Path, **args: object) -> dict:
    return await run(root, "ReadFile", args)


async def test_read_file__small_file__returns_full_content(repo: Path) -> None:
    (repo / "small.py").write_text("line1\nline2\nline3\n")
    commit(repo)
    result = await read_file(repo, path="small.py")
    assert result["content"] == "line1\nline2\nline3\n"
    assert result["total_lines"] == 3
    assert result["truncated"] is False
    assert result["encoding"] == "utf-8"


async def test_read_file__large_file__truncates_by_lines(repo: Path) -> None:
    (repo / "big.py").write_text("".join(f"line {i}\n" for i in range(5000)))
    commit(repo)
    result = await read_file(repo, path="big.py")
    assert result["total_lines"] == 5000
    assert result["truncated"] is True
    assert len(result["content"].splitlines()) <= 2000


async def test_read_file__large_file__truncates_by_bytes(repo: Path) -> None:
    (repo / "huge.py").write_text("x" * (600 * 1024))
    commit(repo)
    result = await read_file(repo, path="huge.py")
    assert result["truncated"] is True
    assert len(result["content"].encode("utf-8")) <= 512 * 1024


async def test_read_file__offset_and_limit__returns_slice(repo: Path) -> None:
    (repo / "lines.py").write_text("".join(f"line{i}\n" for i in range(200)))
    commit(repo)
    result = await read_file(repo, path="lines.py", offset=100, limit=50)
    assert result["content"].startswith("line100\n")
    assert len(result["content"].splitlines()) == 50


async def test_read_file__offset_beyond_file__returns_empty(repo: Path) -> None:
    (repo / "short.py").write_text("one\ntwo\n")
    commit(repo)
    result = await read_file(repo, path="short.py", offset=9999)
    assert result["content"] == ""
    assert result["total_lines"] == 2


async def test_read_file__binary_file__raises_error(repo: Path) -> None:
    (repo / "bin.dat").write_bytes(b"\x00\x01\x02")
    commit(repo)
    assert await code_of(repo, "ReadFile", {"path": "bin.dat"}) == "binary_file"


async def test_read_file__file_not_found__raises_error(repo: Path) -> None:
    assert await code_of(repo, "ReadFile", {"path": "nope.py"}) == "file_not_found"


async def test_read_file__path_traversal__raises_error(repo: Path) -> None:
    assert await code_of(repo, "ReadFile", {"path": "../../etc/passwd"}) == "path_traversal"


async def test_read_file__utf8_content__preserves_encoding(repo: Path) -> None:
    (repo / "unicode.py").write_text("café = '☕'\n", encoding="utf-8")
    commit(repo)
    result = await read_file(repo, path="unicode.py")
    assert "café" in result["content"]
    assert "☕" in result["content"]


async def test_read_file__empty_file__returns_empty_content(repo: Path) -> None:
    (repo / "empty.py").write_text("")
    commit(repo)
    result = await read_file(repo, path="empty.py")
    assert result["content"] == ""
    assert result["total_lines"] == 0
    assert result["truncated"] is False
