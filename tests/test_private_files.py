"""The one atomic 0600 writer: private mode, whole replacement, no temp file left behind."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from opik_connect.private_files import atomic_write_private, write_private_json


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_private_replaces_a_world_readable_file_with_a_0600_one(
    tmp_path: Path,
) -> None:
    target = tmp_path / "state.bin"
    target.write_bytes(b"old contents, longer than the new ones")
    target.chmod(0o644)
    atomic_write_private(target, b"new")
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]


def test_atomic_write_private_leaves_the_old_file_and_no_temp_when_the_write_fails(
    tmp_path: Path,
) -> None:
    target = tmp_path / "state.bin"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write_private(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]


def test_write_private_json_creates_a_0700_parent_and_sorted_json(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "pairings.json"
    write_private_json(target, {"b": 1, "a": [2]})
    assert json.loads(target.read_text()) == {"a": [2], "b": 1}
    assert target.read_text().index('"a"') < target.read_text().index('"b"')
    assert _mode(target.parent) == 0o700
    assert _mode(target) == 0o600
