"""The `ollie>` prompt and the real approval prompt sharing one pseudo-terminal (pexpect)."""

from __future__ import annotations

from pathlib import Path

import pexpect
import pytest
from proposal_fixtures import proposal_service, spawn_harness

pytestmark = pytest.mark.timeout(60)


def test_question_proposal_approval_and_back_to_the_prompt(repo: Path, tmp_path: Path) -> None:
    child = spawn_harness("ollie_terminal_harness.py", repo, tmp_path / "prompt.log")
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
    [record] = proposal_service(repo).journal.all()
    assert record.status == "applied"
    assert "why so curt?" in record.args.reason
