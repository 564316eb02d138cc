"""The `ollie>` prompt and the real approval prompt sharing one pseudo-terminal (pexpect)."""

from __future__ import annotations

import re
from pathlib import Path

import pexpect
import pytest
from proposal_fixtures import proposal_service, spawn_harness

from opik_connect.connect.proposals.journal import JournaledProposal

pytestmark = pytest.mark.timeout(60)


def end_session(child: pexpect.spawn, repo: Path) -> list[JournaledProposal]:
    """End the prompt with EOF, wait for the harness to exit; the proposals it left."""
    child.sendeof()
    child.expect("PROMPT DONE")
    child.expect(pexpect.EOF)
    return proposal_service(repo).journal.all()


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
    [record] = end_session(child, repo)
    assert record.status == "applied"
    assert "why so curt?" in record.args.reason


def screen_line_of(raw: str, text: str) -> str:
    """What the terminal shows on the line where `text` is printed: what follows the last
    erase-line before it, without colours."""
    at = raw.index(text)
    line = raw[raw.rfind("\n", 0, at) + 1 : raw.find("\n", at)]
    line = line.rsplit("\x1b[2K", 1)[-1]
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line).strip()


def test_a_proposal_notice_gets_its_own_line_and_the_prompt_is_redrawn(
    repo: Path, tmp_path: Path
) -> None:
    child = spawn_harness(
        "ollie_terminal_harness.py", repo, tmp_path / "prompt.log", PROPOSE_AT_PROMPT="1"
    )
    child.expect("ollie> ready")
    child.expect(r"decide here or with `opik-connect approve\|reject \w+`\)")
    child.expect("ollie> ")  # redrawn under the notice
    child.expect(r"\[q\] stop asking")
    child.logfile_read.flush()
    raw = (tmp_path / "prompt.log").read_text()
    notice = screen_line_of(raw, "file(s); decide here")
    assert notice.startswith("● proposal ") and "ollie>" not in notice, repr(notice)
    assert re.search(r"file\(s\); decide here[^\n]*\n(\x1b\[[0-9;]*m)*ollie> ", raw)
    child.send("y")
    child.expect("Approved")
    child.expect("ollie> ")
    [record] = end_session(child, repo)
    assert (record.args.title, record.status) == ("Arrived at the prompt", "applied")
