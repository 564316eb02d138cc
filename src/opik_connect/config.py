"""Project configuration (`[tool.opik-connect]` in pyproject.toml) and where state lives."""

from __future__ import annotations

import hashlib
import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_MODEL = "claude-sonnet-4-6"


class ConfigError(Exception):
    """A configuration problem the user must fix; the message says where."""


class ProjectConfig(BaseModel):
    """Keys of `[tool.opik-connect]`. Unknown keys are refused so a typo is not silently ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    deny: list[str] = Field(default_factory=list, description="Extra globs no command may read.")
    entrypoint: str | None = Field(None, description="'pkg.module:function' of the agent.")
    model: str = DEFAULT_MODEL
    judge_model: str | None = Field(None, alias="judge-model")
    platform: str | None = Field(None, description="ws(s):// URL of a team platform.")
    runner_name: str | None = Field(None, alias="runner-name")
    verify: Literal["before", "after", "off"] = Field(
        "before",
        description="When the suite runs on a proposal: before it is shown (on a scratch build), "
        "after approval (on the fix branch), or never.",
    )


def load_project_config(root: Path) -> ProjectConfig:
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return ProjectConfig()
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{pyproject}: {exc}") from exc
    section = data.get("tool", {}).get("opik-connect", {})
    try:
        return ProjectConfig.model_validate(section)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{pyproject}: [tool.opik-connect] {field}: {first['msg']}") from exc


def user_state_dir() -> Path:
    """Per-user state (pid files, pairings). OPIK_CONNECT_STATE_DIR overrides, for tests."""
    override = os.environ.get("OPIK_CONNECT_STATE_DIR")
    if override:
        base = Path(override)
    else:
        xdg = os.environ.get("XDG_STATE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".local" / "state") / "opik-connect"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base


def project_state_dir(root: Path) -> Path:
    """Per-project state (journal, worktrees, run records), outside the user's tree."""
    resolved = root.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    path = user_state_dir() / "projects" / f"{resolved.name}-{digest}"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
