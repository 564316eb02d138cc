"""Fixtures many test modules share: a tmp opik-connect state dir, a default project repo."""

from __future__ import annotations

from pathlib import Path

import pytest
from postgres_kit import postgres_dsn, postgres_server  # noqa: F401 (shared fixtures)
from proposal_fixtures import make_repo


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """OPIK_CONNECT_STATE_DIR in a tmp dir: pairings, journals and pid files stay per test."""
    path = tmp_path / "state"
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(path))
    return path


@pytest.fixture
def no_ambient_settings(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared tmp state dir, and no ambient Anthropic key, base URL or Opik URL override."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPIK_URL_OVERRIDE"):
        monkeypatch.delenv(name, raising=False)
    return state_dir


@pytest.fixture
def repo(tmp_path: Path, state_dir: Path) -> Path:
    """The proposal tests' agent project in a tmp git repo; other trees override `repo`."""
    return make_repo(tmp_path / "repo")
