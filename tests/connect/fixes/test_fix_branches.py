"""Fix branches checked with git itself: kill -9 at every apply step, merge and drop refusals."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from proposal_fixtures import git, proposal_service, snapshot

from opik_connect.connect.fixes.branches import APPLY_STEPS, FixError, slugify
from opik_connect.connect.proposals.service import ProposalService
from opik_connect.protocol import BridgeError, FileEdit, ProposeChangeArgs

TESTS_DIR = Path(__file__).resolve().parents[2]
CHILD = """
import asyncio, sys
from pathlib import Path
from opik_connect.connect.proposals.service import ProposalService
from crash_points import sigkill_after
from proposal_fixtures import proposal_service
service = proposal_service(Path(sys.argv[1]))
service.fixes.on_step = sigkill_after(sys.argv[3])
asyncio.run(service.approve(sys.argv[2]))
"""


def service(repo: Path, emit=None) -> ProposalService:
    return proposal_service(repo, emit=emit)


def change(old: str = "return 'empty'", new: str = "return 'Please ask.'", path="agent.py"):
    return ProposeChangeArgs(
        title="Polite empty answer",
        reason="because",
        trace_id="t1",
        edits=[FileEdit(path=path, old_string=old, new_string=new)],
    )


def worktrees(repo: Path) -> list[str]:
    out = git(repo, "worktree", "list", "--porcelain")
    assert "prunable" not in out and "locked" not in out
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("step", APPLY_STEPS)
def test_kill_at_each_apply_step_then_restart_is_consistent(repo: Path, step: str) -> None:
    svc = service(repo)
    proposal = asyncio.run(svc.submit(change())).proposal_id
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR)}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(repo), proposal, step],
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    record = svc.get(proposal)
    branch = f"opik/fix/{proposal}-polite-empty-answer"
    exists = bool(git(repo, "branch", "--list", branch))
    assert exists == (APPLY_STEPS.index(step) >= APPLY_STEPS.index("ref_updated"))
    if record.status == "applying":
        record = svc.recover_one(record)
        assert record.status == ("applied" if exists else "approved")
        if not exists:
            assert worktrees(repo) == [str(repo)]
            assert list((svc.state_dir / "worktrees").iterdir()) == []
    events = []

    async def emit(event) -> None:
        events.append(event)

    restarted = service(repo, emit)
    asyncio.run(restarted.start())
    record = restarted.get(proposal)
    assert record.status == "applied" and record.delivered
    assert git(repo, "rev-parse", branch) == record.commit
    assert f"Opik-Proposal: {proposal}" in git(repo, "log", "-1", "--format=%B", branch)
    assert "Please ask." in git(repo, "show", f"{branch}:agent.py")
    assert worktrees(repo) == [str(repo), str(Path(record.worktree).resolve())]
    assert git(Path(record.worktree), "status", "--porcelain") == ""
    assert [e.decision for e in events] == ["approved"] and events[0].branch == branch
    assert git(repo, "status", "--porcelain") == ""


def approved_fix(repo: Path, **kwargs) -> tuple[ProposalService, str]:
    svc = service(repo)
    proposal = asyncio.run(svc.submit(change(**kwargs))).proposal_id
    record = asyncio.run(svc.approve(proposal))
    assert record.status == "applied"
    return svc, proposal


def test_merge_refuses_dirty_tree_and_changes_nothing(repo: Path) -> None:
    svc, proposal = approved_fix(repo)
    (repo / "notes.txt").write_text("dirty\n")
    before = snapshot(repo)
    with pytest.raises(FixError, match=r"uncommitted changes to tracked files \(notes.txt\)"):
        svc.fixes.merge(svc.get(proposal))
    assert snapshot(repo) == before


def test_merge_refuses_conflict_and_changes_nothing(repo: Path) -> None:
    svc, proposal = approved_fix(repo)
    (repo / "agent.py").write_text((repo / "agent.py").read_text().replace("'empty'", "'nothing'"))
    git(repo, "commit", "-qam", "diverge")
    before = snapshot(repo)
    with pytest.raises(FixError, match=r"would conflict in agent.py; nothing was changed"):
        svc.fixes.merge(svc.get(proposal))
    assert snapshot(repo) == before
    assert not (repo / ".git" / "MERGE_HEAD").exists()


def test_merge_then_drop_without_force(repo: Path) -> None:
    svc, proposal = approved_fix(repo)
    record = svc.get(proposal)
    merged = svc.fixes.merge(record)
    assert git(repo, "rev-parse", f"{merged}^2") == record.commit
    assert "Please ask." in (repo / "agent.py").read_text()
    svc.fixes.drop(record)
    assert git(repo, "branch", "--list", record.branch) == ""
    assert worktrees(repo) == [str(repo)]


def test_drop_refuses_unmerged_without_force(repo: Path) -> None:
    svc, proposal = approved_fix(repo)
    record = svc.get(proposal)
    with pytest.raises(FixError, match="unmerged work"):
        svc.fixes.drop(record)
    assert git(repo, "rev-parse", record.branch) == record.commit
    assert Path(record.worktree).exists()
    svc.fixes.drop(record, force=True)
    assert git(repo, "branch", "--list", record.branch) == ""
    assert not Path(record.worktree).exists()


@pytest.mark.timeout(60)
def test_approve_again_finishes_an_interrupted_approval(repo: Path) -> None:
    svc = service(repo)
    proposal = asyncio.run(svc.submit(change())).proposal_id
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR)}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(repo), proposal, "files_written"],
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert child.returncode == -signal.SIGKILL
    assert svc.get(proposal).status == "applying"
    [settled] = svc.recover_interrupted()
    assert settled.status == "approved" and worktrees(repo) == [str(repo)]
    record = asyncio.run(svc.approve(proposal))
    assert record.status == "applied"
    assert git(repo, "rev-parse", record.branch) == record.commit


def test_apply_lock_held_elsewhere_refuses_and_is_not_recovered(repo: Path) -> None:
    svc = service(repo)
    proposal = asyncio.run(svc.submit(change())).proposal_id
    svc.journal.update(proposal, lambda r: setattr(r, "status", "applying"))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl,os,sys,time; fd=os.open(sys.argv[1], os.O_RDWR|os.O_CREAT);"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(30)",
            str(svc.journal.dir / f".apply-{proposal}.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert svc.recover_interrupted() == []
        with pytest.raises(BridgeError, match="being applied by another process"):
            asyncio.run(svc.approve(proposal))
        assert svc.get(proposal).status == "applying"
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        (
            "Keep the help articles in the prompt when an order is looked up",
            "keep-the-help-articles-in-the-prompt",
        ),
        ("Polite empty answer", "polite-empty-answer"),
        ("Exactly forty chars here abcdefghijklmno", "exactly-forty-chars-here-abcdefghijklmno"),
        ("Forty one chars here abcdefghijklmnopqrst", "forty-one-chars-here"),
        ("Supercalifragilistic" * 3, "supercalifragilistic" * 2),
        ("Caf\u00e9 \u2014 r\u00e9sum\u00e9!", "cafe-resume"),
        ("!!!", "fix"),
    ],
)
def test_slug_is_capped_at_a_word_boundary(title: str, slug: str) -> None:
    assert slugify(title) == slug


@given(st.text(max_size=120))
def test_slug_never_ends_mid_word(title: str) -> None:
    slug = slugify(title)
    assert 0 < len(slug) <= 40 and not slug.startswith("-") and not slug.endswith("-")
    full = slugify(title, limit=10_000)
    assert full.startswith(slug)
    if slug != full and "-" in full[:41]:
        assert full[len(slug)] == "-"
