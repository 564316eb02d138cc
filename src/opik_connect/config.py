"""Project configuration (`[tool.opik-connect]`), Opik's own settings, and where state lives."""

from __future__ import annotations

import base64
import binascii
import configparser
import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Literal
from urllib.parse import urljoin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_MODEL = "claude-sonnet-4-6"
OPIK_CLOUD_URL = "https://www.comet.com/opik/api"
OPIK_CONFIG_FILE = "~/.opik.config"
OPIK_DEFAULT_WORKSPACE = "default"


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
    python: str | None = Field(None, description="The agent's interpreter (path, or relative).")
    store: str | None = Field(
        None,
        description="The platform's store: a postgresql:// URL (a team's replicas share it) or a "
        "SQLite file path; default: a SQLite file in the state dir.",
    )
    sink_port: int | None = Field(
        None,
        alias="sink-port",
        ge=0,
        le=65535,
        description="The platform's trace sink port (for a proxy in front of it); default: a "
        "free one.",
    )
    sink_public_port: int | None = Field(
        None,
        alias="sink-public-port",
        ge=1,
        le=65535,
        description="The port daemons reach the trace sink on (a proxy's), granted to them "
        "instead of the sink's own; default: the sink's own.",
    )
    suite_project: str | None = Field(
        None, alias="suite-project", description="Opik project for suite runs' traces."
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


class OpikSettings(BaseModel):
    """Where Opik is, resolved as the SDK does: OPIK_* variables over the config file's `[opik]`
    section (`OPIK_CONFIG_PATH`, default ~/.opik.config); with an API key and no URL, Opik Cloud
    (or the URL the key itself carries). `url` is None when no server is configured at all."""

    url: str | None = None
    api_key: str | None = None
    workspace: str | None = None
    project_name: str | None = None
    url_source: str = ""
    """Where `url` came from, for error messages: a variable, the file, or 'the API key'."""

    @property
    def workspace_name(self) -> str:
        return self.workspace or OPIK_DEFAULT_WORKSPACE


def load_opik_settings(environ: dict[str, str] | None = None) -> OpikSettings:
    env = os.environ if environ is None else environ
    config_path = env.get("OPIK_CONFIG_PATH", "").strip() or OPIK_CONFIG_FILE
    path = Path(config_path).expanduser()
    from_file = _read_opik_file(path)

    def pick(key: str) -> tuple[str | None, str]:
        value = env.get(f"OPIK_{key.upper()}", "").strip()
        if value:
            return value, f"OPIK_{key.upper()}"
        value = from_file.get(key, "").strip()
        return (value, f"{path} [opik] {key}") if value else (None, "")

    url, url_source = pick("url_override")
    api_key, _ = pick("api_key")
    if url is None and api_key:
        url, url_source = _url_from_key(api_key) or OPIK_CLOUD_URL, "OPIK_API_KEY (Opik Cloud)"
    return OpikSettings(
        url=url.rstrip("/") if url else None,
        api_key=api_key,
        workspace=pick("workspace")[0],
        project_name=pick("project_name")[0],
        url_source=url_source,
    )


def _read_opik_file(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return dict(parser.items("opik")) if parser.has_section("opik") else {}


def _url_from_key(api_key: str) -> str | None:
    """An enhanced key is `<key>*<base64 JSON with baseUrl>`; the SDK then uses baseUrl/opik/api."""
    _, sep, encoded = api_key.partition("*")
    if not sep:
        return None
    try:
        attributes = json.loads(base64.b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (binascii.Error, ValueError):
        return None
    base = attributes.get("baseUrl") if isinstance(attributes, dict) else None
    return urljoin(base, "opik/api/").rstrip("/") if isinstance(base, str) and base else None
