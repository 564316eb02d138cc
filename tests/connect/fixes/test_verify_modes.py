"""`[tool.opik-connect] verify`: "after" verifies on the fix branch once approved (no check before
the user sees it), "off" never runs the suite for a proposal, and a typo is a config error."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from fix_flow_testkit import linked_daemon, make_refund_project, refund_fix, team_platform

from opik_connect.config import ConfigError, load_project_config

pytestmark = pytest.mark.timeout(60)


def project_with(root: Path, verify: str) -> Path:
    repo = make_refund_project(root)
    (repo / "pyproject.toml").write_text(f'[tool.opik-connect]\nverify = "{verify}"\n')
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "config"], cwd=repo, check=True)
    return repo


@pytest.mark.parametrize(("mode", "after"), [("after", ["passed"]), ("off", [])])
async def test_verify_after_or_off_shows_the_proposal_unchecked(
    tmp_path: Path, state_dir: Path, mode: str, after: list[str]
) -> None:
    repo = await asyncio.to_thread(project_with, tmp_path / "project", mode)
    async with (
        team_platform(repo) as (platform, _),
        linked_daemon(repo, platform) as (
            runner,
            service,
        ),
    ):
        proposed = await runner.propose_change(refund_fix())
        assert proposed.verification is None and proposed.status == "pending"
        await service.approve(proposed.proposal_id, by="test")
        async with asyncio.timeout(30):
            decided = await runner.wait_decision(proposed.proposal_id)
    assert decided.decision == "approved"
    assert [run.status for run in decided.suite_results] == after


def test_default_is_before_and_a_typo_is_refused(tmp_path: Path) -> None:
    assert load_project_config(tmp_path).verify == "before"
    (tmp_path / "pyproject.toml").write_text('[tool.opik-connect]\nverify = "sometimes"\n')
    with pytest.raises(ConfigError, match=r"\[tool.opik-connect\] verify"):
        load_project_config(tmp_path)
