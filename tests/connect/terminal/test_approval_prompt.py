"""The real approval prompt, driven through a pseudo-terminal with pexpect."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pexpect
import pytest
from proposal_fixtures import TESTS_DIR, git, proposal_service, spawn_harness

from opik_connect.connect.terminal.approval_prompt import render_proposal
from opik_connect.protocol import FileEdit, ProposeChangeArgs

pytestmark = pytest.mark.timeout(60)
HARNESS = TESTS_DIR / "approval_prompt_harness.py"


def propose(repo: Path, title: str, old: str, new: str, path: str = "agent.py") -> str:
    service = proposal_service(repo)
    args = ProposeChangeArgs(
        title=title,
        reason=f"reason for {title}",
        trace_id="trace-9",
        test_case_ids=["case-a"],
        edits=[FileEdit(path=path, old_string=old, new_string=new)],
    )
    return asyncio.run(service.submit(args)).proposal_id


def status(repo: Path, proposal_id: str) -> str:
    return proposal_service(repo).get(proposal_id).status


def spawn(repo: Path, tmp_path: Path, **env: str) -> pexpect.spawn:
    return spawn_harness(HARNESS.name, repo, tmp_path / "prompt.log", **{"PAGER": "cat", **env})


def test_approve_reject_with_reason_and_skip(repo: Path, tmp_path: Path) -> None:
    first = propose(repo, "First fix", "return 'empty'", "return 'Please ask.'")
    second = propose(repo, "Second fix", "return question.upper()", "return question.title()")
    third = propose(repo, "Third fix", "two", "TWO", path="notes.txt")
    child = spawn(repo, tmp_path)
    child.expect("First fix")
    child.expect("trace-9")
    child.expect(
        r"agent\.py \((?:\x1b\[[0-9;]*m)*\+1(?:\x1b\[[0-9;]*m)* (?:\x1b\[[0-9;]*m)*\u22121"
    )
    child.expect(r"\[q\] stop asking")
    child.send("y")
    child.expect("Approved")
    child.expect("Second fix")
    child.expect(r"\[q\] stop asking")
    child.send("n")
    child.expect("Reason for Ollie")
    child.sendline("too clever by half")
    child.expect("Rejected")
    child.expect("Third fix")
    child.expect(r"\[q\] stop asking")
    child.send("s")
    child.expect("stays pending")
    child.expect("No proposals waiting")
    child.send("q")
    child.expect("PROMPT DONE")
    child.expect(pexpect.EOF)
    service = proposal_service(repo)
    assert service.get(first).status == "applied"
    assert git(repo, "rev-parse", service.get(first).branch) == service.get(first).commit
    rejected = service.get(second)
    assert (rejected.status, rejected.reason) == ("rejected", "too clever by half")
    assert service.get(third).status == "pending"


def test_quit_with_proposals_queued(repo: Path, tmp_path: Path) -> None:
    first = propose(repo, "First fix", "return 'empty'", "return 'Please ask.'")
    second = propose(repo, "Second fix", "two", "TWO", path="notes.txt")
    child = spawn(repo, tmp_path)
    child.expect("First fix")
    child.expect(r"\(1 of 2\)")
    child.expect(r"\[q\] stop asking")
    child.send("d")
    child.expect("Ollie proposes a change")
    child.send("q")
    child.expect(r"Stopped asking; 2 proposal\(s\) stay pending")
    child.expect("PROMPT DONE")
    child.expect(pexpect.EOF)
    assert status(repo, first) == status(repo, second) == "pending"
    assert git(repo, "branch", "--list", "opik/*") == ""


def test_edit_diff_in_scripted_editor_then_approve(repo: Path, tmp_path: Path) -> None:
    proposal = propose(repo, "Editable fix", "return 'empty'", "return 'Please ask.'")
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nsed -i "s/Please ask\\./Ask me anything./" "$1"\n')
    editor.chmod(0o755)
    child = spawn(repo, tmp_path, EDITOR=str(editor), VISUAL="")
    child.expect("Editable fix")
    child.expect(r"\[q\] stop asking")
    child.send("e")
    child.expect("Ask me anything")
    child.expect(r"\[q\] stop asking")
    child.send("y")
    child.expect("Approved")
    child.send("q")
    child.expect("PROMPT DONE")
    record = proposal_service(repo).get(proposal)
    assert record.status == "applied"
    assert "Ask me anything." in git(repo, "show", f"{record.branch}:agent.py")


def test_edit_that_breaks_the_diff_is_refused(repo: Path, tmp_path: Path) -> None:
    proposal = propose(repo, "Editable fix", "return 'empty'", "return 'Please ask.'")
    editor = tmp_path / "editor.sh"
    editor.write_text(
        "#!/bin/sh\nsed -i \"s/-        return 'empty'/-        return 'nope'/\" \"$1\"\n"
    )
    editor.chmod(0o755)
    child = spawn(repo, tmp_path, EDITOR=str(editor), VISUAL="")
    child.expect(r"\[q\] stop asking")
    child.send("e")
    child.expect("patch_failed")
    child.expect("keeps its diff")
    child.send("q")
    child.expect("PROMPT DONE")
    assert "Please ask." in proposal_service(repo).get(proposal).diff


def test_no_tty_leaves_proposals_pending(repo: Path) -> None:
    import subprocess

    proposal = propose(repo, "First fix", "return 'empty'", "return 'Please ask.'")
    done = subprocess.run(
        [sys.executable, str(HARNESS), str(repo)],
        env={**os.environ, "PYTHONPATH": str(TESTS_DIR)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "No terminal" in done.stdout and "PROMPT DONE" in done.stdout
    assert status(repo, proposal) == "pending"


def test_render_shows_stats_and_evidence(repo: Path) -> None:
    from rich.console import Console

    proposal = propose(repo, "First fix", "return 'empty'", "return 'Please ask.'")
    record = proposal_service(repo).get(proposal)
    console = Console(width=120, record=True)
    console.print(render_proposal(record))
    text = console.export_text()
    assert "agent.py (+1 \u22121)" in text and "case-a" in text and "reason for First fix" in text


def test_proposal_arriving_while_prompt_waits_is_shown(repo: Path, tmp_path: Path) -> None:
    child = spawn(repo, tmp_path, LATE_PROPOSAL_AFTER="0.5")
    child.expect("No proposals waiting")
    child.expect("Late fix")
    child.expect(r"\[q\] stop asking")
    child.send("y")
    child.expect("Approved")
    child.send("q")
    child.expect("PROMPT DONE")
    [record] = proposal_service(repo).journal.all()
    assert record.status == "applied" and record.args.title == "Late fix"


async def test_auto_approver_warns_and_approves(repo: Path) -> None:
    from rich.console import Console

    from opik_connect.connect.terminal.approval_prompt import run_auto_approver

    service = proposal_service(repo)
    edit = FileEdit(path="notes.txt", old_string="two", new_string="TWO")
    proposal = await service.submit(ProposeChangeArgs(title="Auto", reason="r", edits=[edit]))
    console = Console(record=True, width=100)
    task = asyncio.create_task(run_auto_approver(service, console))
    for _ in range(100):
        await asyncio.sleep(0.05)
        if service.get(proposal.proposal_id).status == "applied":
            break
    task.cancel()
    assert service.get(proposal.proposal_id).status == "applied"
    assert "AUTO-APPROVE IS ON" in console.export_text()


HOSTILE_TITLE = "Fix \x1b[8mHIDDEN\x1b[28m\u202e"
HOSTILE_NEW = "return 'ok'  # \x1b[1A\x1b[2K\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07"
RAW_SEQUENCES = ["\x1b[8m", "\x1b[28m", "\x1b[1A", "\x1b[2K", "\x1b[2J", "\x1b]52", "\u202e"]


def hostile_proposal(repo: Path) -> str:
    service = proposal_service(repo)
    args = ProposeChangeArgs(
        title=HOSTILE_TITLE,
        reason="because \x1b[2J",
        edits=[FileEdit(path="agent.py", old_string="return 'empty'", new_string=HOSTILE_NEW)],
    )
    return asyncio.run(service.submit(args)).proposal_id


def test_hostile_text_is_shown_flagged_and_applied_byte_for_byte(
    repo: Path, tmp_path: Path
) -> None:
    proposal = hostile_proposal(repo)
    editor = tmp_path / "editor.sh"
    seen_by_editor = tmp_path / "seen.diff"
    editor.write_text(f'#!/bin/sh\ncp "$1" {seen_by_editor}\n')
    editor.chmod(0o755)
    child = spawn(repo, tmp_path, EDITOR=str(editor), VISUAL="")
    child.expect("control or bidi character")
    child.expect("Fix \u241b\\[8mHIDDEN\u241b\\[28m\u27e8U\\+202E\u27e9")
    child.expect(r"\u241b\[1A\u241b\[2K\u241b\[2J\u241b\]52;c;cm0gLXJmIH4=\u2407")
    child.expect(r"\[q\] stop asking")
    child.send("d")
    child.expect("control or bidi character")
    child.expect(r"\u241b\[2J\u241b\]52")
    child.expect(r"\[q\] stop asking")
    child.send("e")
    child.expect("Diff unchanged")
    child.send("y")
    child.expect("Approved")
    child.send("q")
    child.expect("PROMPT DONE")
    child.expect(pexpect.EOF)
    shown = (tmp_path / "prompt.log").read_text(encoding="utf-8")
    for raw in RAW_SEQUENCES:
        assert raw not in shown
    record = proposal_service(repo).get(proposal)
    assert HOSTILE_NEW in seen_by_editor.read_text(encoding="utf-8") == record.diff
    assert record.status == "applied"
    assert HOSTILE_NEW in git(repo, "show", f"{record.branch}:agent.py")


def test_a_clean_proposal_has_no_warning(repo: Path) -> None:
    from rich.console import Console

    record = proposal_service(repo).get(propose(repo, "Fine", "return 'empty'", "return 'x'"))
    console = Console(width=120, record=True)
    console.print(render_proposal(record))
    assert "control or bidi" not in console.export_text()
