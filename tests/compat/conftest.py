"""The compatibility suite's fixture: an empty git repo per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from opik_compat_kit import git_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return git_repo(tmp_path)
