"""`fixes merge` then `fixes drop`: a merged fix stays listed as merged once its branch is gone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from proposal_fixtures import git, proposal_service
from typer.testing import CliRunner, Result

from opik_connect.cli import app
from opik_connect.protocol import FileEdit, ProposeChangeArgs

pytestmark = pytest.mark.timeout(60)


def cli(repo: Path, *args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--root", str(repo)], env={"COLUMNS": "200"})


def approved_fix(repo: Path) -> str:
    edit = FileEdit(path="agent.py", old_string="return 'empty'", new_string="return 'Hi.'")
    args = ProposeChangeArgs(title="Polite empty answer", reason="why", edits=[edit])
    service = proposal_service(repo)
    proposal = asyncio.run(service.submit(args)).proposal_id
    assert asyncio.run(service.approve(proposal, by="cli")).status == "applied"
    return proposal


def status_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith("status"))


def test_drop_after_merge_keeps_merged_and_says_the_branch_is_deleted(repo: Path) -> None:
    proposal = approved_fix(repo)
    branch = proposal_service(repo).get(proposal).branch
    assert cli(repo, "fixes", "merge", proposal).exit_code == 0
    dropped = cli(repo, "fixes", "drop", proposal)
    assert dropped.exit_code == 0, dropped.stderr
    assert "stays listed as merged" in dropped.stdout
    assert git(repo, "branch", "--list", "opik/fix/*") == ""
    listed = cli(repo, "fixes").stdout
    assert status_line(listed).split(None, 1)[1] == "merged, branch deleted"
    assert f"{branch} (deleted)" in listed
    shown = cli(repo, "fixes", "show", proposal).stdout
    assert "applied / merged, branch deleted" in shown and f"{branch} (deleted)" in shown
    again = cli(repo, "fixes", "drop", proposal)
    assert again.exit_code == 1 and "already deleted" in again.stderr
    assert "merged, branch deleted" in cli(repo, "fixes").stdout


def test_a_fix_merged_by_hand_is_merged_when_dropped(repo: Path) -> None:
    proposal = approved_fix(repo)
    git(repo, "merge", "-q", "--no-edit", proposal_service(repo).get(proposal).branch or "")
    assert cli(repo, "fixes", "drop", proposal).exit_code == 0
    assert status_line(cli(repo, "fixes").stdout).split(None, 1)[1] == "merged, branch deleted"


def test_a_forced_drop_of_unmerged_work_is_dropped(repo: Path) -> None:
    proposal = approved_fix(repo)
    assert cli(repo, "fixes", "drop", proposal, "--force").exit_code == 0
    assert status_line(cli(repo, "fixes").stdout).split(None, 1)[1] == "dropped"


def parents(repo: Path, rev: str = "HEAD") -> list[str]:
    return git(repo, "rev-list", "--parents", "-n", "1", rev).split()[1:]


def test_merge_makes_a_merge_commit_by_default(repo: Path) -> None:
    proposal = approved_fix(repo)
    merged = cli(repo, "fixes", "merge", proposal)
    assert merged.exit_code == 0, merged.stderr
    assert "merge commit)" in merged.stdout
    assert parents(repo)[1] == proposal_service(repo).get(proposal).commit


def test_merge_ff_fast_forwards_when_the_branch_has_not_moved(repo: Path) -> None:
    proposal = approved_fix(repo)
    fix_commit = proposal_service(repo).get(proposal).commit
    merged = cli(repo, "fixes", "merge", proposal, "--ff")
    assert merged.exit_code == 0, merged.stderr
    assert "fast-forward)" in merged.stdout
    assert git(repo, "rev-parse", "HEAD") == fix_commit
    assert "merged" in status_line(cli(repo, "fixes").stdout)


def test_merge_ff_falls_back_to_a_merge_commit_when_the_branch_moved(repo: Path) -> None:
    proposal = approved_fix(repo)
    (repo / "notes.txt").write_text("one\ntwo\nthree\nfour\n")
    git(repo, "commit", "-qam", "moved on")
    moved = git(repo, "rev-parse", "HEAD")
    merged = cli(repo, "fixes", "merge", proposal, "--ff")
    assert merged.exit_code == 0, merged.stderr
    assert "merge commit; a fast-forward was not possible" in merged.stdout
    assert parents(repo) == [moved, proposal_service(repo).get(proposal).commit]
