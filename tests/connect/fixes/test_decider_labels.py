"""`fixes show` names who decided: the terminal, the CLI command, or --auto-approve.

`fixes show` names who decided truly: the daemon's terminal prompt for both its approvals and
its rejections, the CLI command by name, and --auto-approve.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pexpect
import pytest
from proposal_fixtures import proposal_service, spawn_harness
from typer.testing import CliRunner, Result

from opik_connect.cli import app
from opik_connect.protocol import FileEdit, ProposeChangeArgs

pytestmark = pytest.mark.timeout(60)


def cli(repo: Path, *args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--root", str(repo)], env={"COLUMNS": "200"})


def propose(repo: Path, title: str, old: str, new: str, path: str = "agent.py") -> str:
    edit = FileEdit(path=path, old_string=old, new_string=new)
    args = ProposeChangeArgs(title=title, reason="why", edits=[edit])
    return asyncio.run(proposal_service(repo).submit(args)).proposal_id


def decided_by(repo: Path, proposal_id: str) -> str:
    shown = cli(repo, "fixes", "show", proposal_id)
    assert shown.exit_code == 0, shown.stderr
    found = re.search(r"decided  \S+ \S+ by (.+)\n", shown.stdout)
    assert found, shown.stdout
    return found.group(1)


def test_terminal_approval_and_rejection_both_say_terminal(repo: Path, tmp_path: Path) -> None:
    approved = propose(repo, "First fix", "return 'empty'", "return 'Please ask.'")
    rejected = propose(repo, "Second fix", "return question.upper()", "return question.title()")
    child = spawn_harness("approval_prompt_harness.py", repo, tmp_path / "prompt.log", PAGER="cat")
    child.expect(r"\[q\] stop asking")
    child.send("y")
    child.expect("Approved")
    child.expect(r"\[q\] stop asking")
    child.send("n")
    child.expect("Reason for Ollie")
    child.sendline("")
    child.expect("Rejected")
    child.expect("No proposals waiting")
    child.send("q")
    child.expect(pexpect.EOF)
    assert decided_by(repo, approved) == "terminal"
    assert decided_by(repo, rejected) == "terminal"


def test_cli_decisions_name_their_command_and_auto_approve_its_flag(repo: Path) -> None:
    approved = propose(repo, "First fix", "return 'empty'", "return 'Please ask.'")
    rejected = propose(repo, "Second fix", "return question.upper()", "return question.title()")
    assert cli(repo, "approve", approved).exit_code == 0
    assert cli(repo, "reject", rejected).exit_code == 0
    assert decided_by(repo, approved) == "CLI (opik-connect approve)"
    assert decided_by(repo, rejected) == "CLI (opik-connect reject)"
    automatic = propose(repo, "Third fix", "two", "TWO", path="notes.txt")
    asyncio.run(proposal_service(repo).approve(automatic, by="auto-approve"))
    assert decided_by(repo, automatic) == "auto-approve (daemon --auto-approve)"
