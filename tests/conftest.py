"""Fixtures every test module may need: the opik-connect state dir kept out of the user's home."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """OPIK_CONNECT_STATE_DIR in a tmp dir: pairings, journals and pid files stay per test."""
    path = tmp_path / "state"
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(path))
    return path
