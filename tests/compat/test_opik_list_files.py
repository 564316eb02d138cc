"""Opik's ListFiles handler tests (sdks/python/tests/unit/runner/bridge_handlers/
test_list_files.py in comet-ml/opik, the version matching SDK 2.2.122), ported to our ListFiles.

Git knows no empty directory: where Opik's test makes one, the port puts a file in it (noted).
"""

from __future__ import annotations

from pathlib import Path

from opik_compat_kit import code_of, commit, run


async def list_files(root: Path, **args: object) -> dict:
    return await run(root, "ListFiles", args)


async def test_list_files__default_args__returns_immediate_contents(repo: Path) -> None:
    (repo / "a.py").write_text("x")
    (repo / "b.txt").write_text("x")
    commit(repo)
    result = await list_files(repo)
    assert sorted(result["files"]) == ["a.py", "b.txt"]


async def test_list_files__directory_entry__has_trailing_slash(repo: Path) -> None:
    """DELIBERATE: what the platform sees is git's view, and git has no empty directories, so
    Opik's empty `src/` is not an entry here; a directory holding a visible file is, as 'src/'."""
    (repo / "src").mkdir()
    (repo / "file.py").write_text("x")
    commit(repo)
    result = await list_files(repo)
    assert "src/" not in result["files"]
    assert "file.py" in result["files"]
    (repo / "src" / "main.py").write_text("x")
    assert "src/" in (await list_files(repo))["files"]


async def test_list_files__default_depth__does_not_recurse(repo: Path) -> None:
    (repo / "sub").mkdir()
    (repo / "sub" / "nested.py").write_text("x")
    (repo / "top.py").write_text("x")
    commit(repo)
    result = await list_files(repo)
    assert "top.py" in result["files"]
    assert "sub/" in result["files"]
    assert not any("nested" in f for f in result["files"])


async def test_list_files__hidden_files__included_in_results(repo: Path) -> None:
    (repo / ".hidden").write_text("x")
    (repo / "visible.py").write_text("x")
    commit(repo)
    result = await list_files(repo)
    assert ".hidden" in result["files"]
    assert "visible.py" in result["files"]


async def test_list_files__noise_directories__excluded_from_results(repo: Path) -> None:
    """Fixture adapted to git (a file in each directory); Opik's noise list applies as is."""
    for name in ("node_modules/pkg.js", "__pycache__/mod.pyc", "src/app.py"):
        (repo / name).parent.mkdir()
        (repo / name).write_text("x")
    commit(repo)
    result = await list_files(repo)
    assert result["files"] == ["src/"]


async def test_list_files__path_arg__scopes_to_subdirectory(repo: Path) -> None:
    (repo / "src").mkdir()
    (repo / "src" / "a.py").write_text("x")
    (repo / "other.py").write_text("x")
    commit(repo)
    result = await list_files(repo, path="src")
    assert "a.py" in result["files"]
    assert "other.py" not in result["files"]


async def test_list_files__path_traversal__raises_error(repo: Path) -> None:
    assert await code_of(repo, "ListFiles", {"path": "../../"}) == "path_traversal"


async def test_list_files__nonexistent_path__raises_error(repo: Path) -> None:
    assert await code_of(repo, "ListFiles", {"path": "nope"}) == "file_not_found"


async def test_list_files__filename_pattern__filters_matching_entries(repo: Path) -> None:
    (repo / "a.py").write_text("x")
    (repo / "b.txt").write_text("x")
    (repo / "c.py").write_text("x")
    commit(repo)
    result = await list_files(repo, pattern="*.py")
    assert sorted(result["files"]) == ["a.py", "c.py"]


async def test_list_files__pattern_with_path__filters_within_subdir(repo: Path) -> None:
    (repo / "src").mkdir()
    (repo / "src" / "app.py").write_text("x")
    (repo / "src" / "readme.md").write_text("x")
    commit(repo)
    result = await list_files(repo, path="src", pattern="*.py")
    assert result["files"] == ["app.py"]


async def test_list_files__path_pattern_with_depth__matches_relative_path(repo: Path) -> None:
    (repo / "src").mkdir()
    (repo / "src" / "app.py").write_text("x")
    (repo / "src" / "util.js").write_text("x")
    commit(repo)
    result = await list_files(repo, pattern="src/*.py", depth=2)
    assert "src/app.py" in result["files"]
    assert not any("util" in f for f in result["files"])


async def test_list_files__empty_directory__returns_empty(repo: Path) -> None:
    commit(repo)
    result = await list_files(repo)
    assert result["files"] == []
    assert result["total"] == 0
    assert result["truncated"] is False


async def test_list_files__depth_2__includes_one_nested_level(repo: Path) -> None:
    (repo / "src").mkdir()
    (repo / "src" / "app.py").write_text("x")
    (repo / "src" / "lib").mkdir()
    (repo / "src" / "lib" / "deep.py").write_text("x")
    commit(repo)
    result = await list_files(repo, depth=2)
    assert "src/app.py" in result["files"]
    assert "src/lib/" in result["files"]
    assert "src/lib/deep.py" not in result["files"]


async def test_list_files__depth_exceeds_max__raises_validation_error(repo: Path) -> None:
    """Opik raises pydantic's ValidationError (its relay then answers `internal`); the wire
    model refuses it here with a named code."""
    assert await code_of(repo, "ListFiles", {"depth": 10}) == "invalid_args"
