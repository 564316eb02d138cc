"""The `ollie>` prompt and the real approval prompt sharing one pseudo-terminal (pexpect)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect
import pytest
from proposal_fixtures import make_repo, sandbox_reader_for

from opik_connect.connect.proposals import ProposalService

pytestmark = pytest.mark.timeout(60)
TESTS_DIR = Path(__file__).resolve().parent
HARNESS = TESTS_DIR / "ollie_terminal_harness.py"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    return make_repo(tmp_path / "repo")


def test_question_proposal_approval_and_back_to_the_prompt(repo: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR), "TERM": "xterm", "COLUMNS": "120"}
    child = pexpect.spawn(
        sys.executable,
        [str(HARNESS), str(repo)],
        env=env,
        timeout=20,
        encoding="utf-8",
        dimensions=(50, 120),
    )
    child.logfile_read = (tmp_path / "prompt.log").open("w")
    child.expect("ollie> ")
    child.sendline("/trace t-42")
    child.expect("context: trace t-42")
    child.expect("ollie> ")
    child.sendline("why so curt?")
    child.expect("Greet politely")
    child.expect("trace t-42")
    child.expect(r"\[q\] stop asking")
    child.send("y")
    child.expect("Approved")
    child.expect("decision: .*approved")
    child.expect("session s1 completed")
    child.expect("ollie> ")
    child.sendeof()
    child.expect("PROMPT DONE")
    child.expect(pexpect.EOF)
    [record] = ProposalService(repo, read=sandbox_reader_for(repo)).journal.all()
    assert record.status == "applied"
    assert "why so curt?" in record.args.reason
