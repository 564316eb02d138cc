"""Verified before you are asked, through Ollie: scripted sessions against a real daemon that
builds each proposal and runs its suite before the user sees it. A failing proposal goes back to
Ollie (held), the revision reaches the user verified, and approval reuses that build; a
regression is caught before approval; and after the bounded revisions a failing proposal is
shown anyway, marked."""

from __future__ import annotations

import asyncio
import io
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fix_flow_testkit import FIX_EDIT, SUITE_TWO_ITEMS, make_refund_project, ollie_with_fixes
from rich.console import Console

from fixtures.scripted_messages_api import ScriptedMessagesAPI, text_turn, tool_turn
from opik_connect.agent.ollie.session_request import OllieLimits
from opik_connect.agent.traces.store import TraceStore
from opik_connect.connect.proposals.journal import JournaledProposal
from opik_connect.connect.proposals.service import ProposalService
from opik_connect.connect.suites.run_records import list_records
from opik_connect.connect.terminal.approval_prompt import render_proposal
from opik_connect.connect.terminal.ask_client import ask_stream
from opik_connect.protocol import AskEvent, AskRequest

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("no_ambient_settings")]


def project(root: Path) -> Path:
    repo = make_refund_project(root)
    (repo / ".opik/suites/refunds.yaml").write_text(SUITE_TWO_ITEMS)
    subprocess.run(["git", "commit", "-qam", "two items"], cwd=repo, check=True)
    return repo


def proposal(new: str, old: str = "20 dollars", title: str = "Answer the right refund") -> dict:
    return {
        "title": title,
        "reason": "c1 fails: the agent says 20 dollars",
        "suite": "refunds",
        "test_case_ids": ["c1"],
        "edits": [{"path": FIX_EDIT["path"], "old_string": old, "new_string": new}],
    }


async def user_decides(service: ProposalService, decide: str) -> list[JournaledProposal]:
    """The user at the approval prompt: waits for what is shown, approves or rejects it."""
    while not service.pending():
        service.changed.clear()
        await service.changed.wait()
    shown = service.pending()
    if decide == "approve":
        await service.approve(shown[0].id, by="test")
    else:
        await service.reject(shown[0].id, "still failing", by="test")
    return shown


async def session(
    tmp_path: Path, repo: Path, turns: list[dict], decide: str
) -> tuple[list[AskEvent], list[JournaledProposal], ProposalService, ScriptedMessagesAPI]:
    with ScriptedMessagesAPI(turns) as api:
        limits = OllieLimits(max_turns=8, wall_time_s=80)
        async with ollie_with_fixes(
            repo, api.url, tmp_path / "transcripts", traces=TraceStore(), limits=limits
        ) as (p, service):
            user = asyncio.create_task(user_decides(service, decide))
            request = AskRequest(question="Why is the refund answer wrong?", suite="refunds")
            events = [e async for e in ask_stream(p.address, request)]
            shown = await user
            assert api.unmatched == [] and api.remaining == 0
            return events, shown, service, api


def sent(events: list[AskEvent]) -> list[dict[str, Any]]:
    return [e.data for e in events if e.type == "proposal_sent"]


async def test_a_failing_proposal_is_revised_before_the_user_sees_it(tmp_path: Path) -> None:
    repo = project(tmp_path / "project")
    turns = [
        tool_turn("propose_change", proposal("15 dollars"), match="refund", tool_id="toolu_p1"),
        tool_turn(
            "propose_change", proposal("10 dollars"), match=["toolu_p1", "held"], tool_id="toolu_p2"
        ),
        text_turn("Fixed: c1 passes.", match=["toolu_p2", "approved"]),
    ]
    events, shown, service, api = await session(tmp_path, repo, turns, "approve")

    first, second = sent(events)
    assert first["held"] is True
    assert first["verification"] == (
        "NOT verified: c1 still fails (run 1: output does not contain '10 dollars'); "
        "1 other item still pass"
    )
    held_result = api.requests[1]["messages"][-1]["content"][0]["content"]
    assert '"status": "held"' in held_result and "output does not contain" in held_result
    assert second["held"] is False
    assert second["verification"] == "verified: c1 failed → passed; 1 other item still pass"
    [record] = shown
    assert record.id == second["proposal_id"], "the user saw only the verified revision"
    panel = Console(file=io.StringIO(), width=120)
    panel.print(render_proposal(record))
    assert "verified: c1 failed → passed; 1 other item still pass" in panel.file.getvalue()

    done = service.get(record.id)
    assert record.verification is not None
    assert done.status == "applied" and done.commit == record.verification.commit
    assert [run.run_id for run in done.suite_results] == [
        run.run_id for run in record.verification.suite_results
    ], "approval reused the verified build and its suite run"
    assert len(list_records(repo, proposal_id=record.id)) == 1
    assert service.get(first["proposal_id"]).status == "held"
    decision = next(e.data for e in events if e.type == "decision_received")
    assert decision["suite_statuses"] == {"refunds": "passed"}


async def test_a_regression_is_caught_and_a_never_green_proposal_is_shown_marked(
    tmp_path: Path,
) -> None:
    repo = project(tmp_path / "project")
    breaks_c2 = proposal("It is 10 dollars", old="Your refund is 20 dollars")
    turns = [
        tool_turn("propose_change", breaks_c2, match="refund", tool_id="toolu_p1"),
        tool_turn(
            "propose_change", proposal("15 dollars"), match=["toolu_p1", "held"], tool_id="toolu_p2"
        ),
        tool_turn(
            "propose_change", proposal("12 dollars"), match=["toolu_p2", "held"], tool_id="toolu_p3"
        ),
        text_turn("I could not make c1 pass.", match=["toolu_p3", "rejected"]),
    ]
    events, shown, _, _ = await session(tmp_path, repo, turns, "reject")

    first, second, third = sent(events)
    assert first["held"] and first["verification"].startswith(
        "REGRESSION: c2 passed → failed (run 1: output does not contain 'Your refund')"
    )
    assert second["held"] and second["verification"].startswith("NOT verified: c1 still fails")
    assert third["held"] is False, "after the bounded revisions, the proposal is shown"
    [record] = shown
    assert record.id == third["proposal_id"]
    assert record.verification is not None and record.verification.status == "not_verified"
    panel = Console(file=io.StringIO(), width=160)
    panel.print(render_proposal(record))
    assert "NOT verified: c1 still fails (run 1: output does not contain '10 dollars')" in (
        panel.file.getvalue()
    )
    assert "20 dollars" in (repo / "agentpkg/agent.py").read_text()
    branches = await asyncio.to_thread(
        subprocess.run, ["git", "branch", "--list", "opik/fix/*"], cwd=repo, capture_output=True
    )
    assert branches.stdout == b"", "a rejected proposal leaves no branch"
