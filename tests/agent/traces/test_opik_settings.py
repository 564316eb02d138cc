"""Opik settings as the SDK reads them, and the distinct errors of fetching a trace from Opik."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from opik_rest_standin import opik_standin

from opik_connect.agent.traces.store import (
    OpikAuthFailed,
    OpikBadBaseUrl,
    OpikNotConfigured,
    OpikTraceSource,
    OpikUnreachable,
    TraceNotFound,
    TraceStore,
)
from opik_connect.config import OPIK_CLOUD_URL, load_opik_settings


def test_env_over_config_file_and_cloud_by_default_with_a_key(tmp_path: Path) -> None:
    config = tmp_path / "opik.config"
    config.write_text(
        "[opik]\nurl_override = http://file:5173/api/\nworkspace = team\n"
        "api_key = file-key\nproject_name = shop\n"
    )
    from_file = load_opik_settings({"OPIK_CONFIG_PATH": str(config)})
    assert (from_file.url, from_file.workspace, from_file.api_key) == (
        "http://file:5173/api",
        "team",
        "file-key",
    )
    assert from_file.project_name == "shop"
    env = load_opik_settings({"OPIK_CONFIG_PATH": str(config), "OPIK_WORKSPACE": "other"})
    assert env.workspace == "other" and env.url == "http://file:5173/api"
    cloud = load_opik_settings({"OPIK_CONFIG_PATH": str(tmp_path / "no"), "OPIK_API_KEY": "k"})
    assert cloud.url == OPIK_CLOUD_URL and cloud.url_source == "OPIK_API_KEY (Opik Cloud)"
    encoded = base64.b64encode(json.dumps({"baseUrl": "https://eu.comet.com/"}).encode()).decode()
    keyed = load_opik_settings({"OPIK_CONFIG_PATH": "/nonexistent", "OPIK_API_KEY": f"k*{encoded}"})
    assert keyed.url == "https://eu.comet.com/opik/api"
    assert load_opik_settings({"OPIK_CONFIG_PATH": "/nonexistent"}).url is None


async def test_no_server_configured_is_said_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPIK_URL_OVERRIDE", "OPIK_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPIK_CONFIG_PATH", "/nonexistent")
    with pytest.raises(OpikNotConfigured, match="no Opik server is configured"):
        await TraceStore.from_env().get("abc")


async def test_each_failure_has_its_own_error() -> None:
    with opik_standin(api_key="key-1", workspace="team") as opik:
        with pytest.raises(OpikAuthFailed, match=r"HTTP 401.*OPIK_API_KEY"):
            await OpikTraceSource(opik.url, api_key="bad", workspace="team").fetch("t")
        with pytest.raises(OpikAuthFailed, match="HTTP 403"):
            await OpikTraceSource(opik.url, api_key="key-1", workspace="x").fetch("t")
        with pytest.raises(OpikBadBaseUrl, match="ends in /api"):
            await OpikTraceSource(opik.root_url, api_key="key-1", workspace="team").fetch("t")
        with pytest.raises(TraceNotFound, match="not found in workspace 'team'"):
            await OpikTraceSource(opik.url, api_key="key-1", workspace="team").fetch("t")
        unused = opik.url
    with pytest.raises(OpikUnreachable, match="cannot reach the Opik server"):
        await OpikTraceSource(unused, timeout_s=2).fetch("t")
