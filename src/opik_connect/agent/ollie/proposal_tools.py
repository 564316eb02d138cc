"""The propose_change tool: send a change to the user, wait for their decision, report it back."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from opik_connect.agent.ollie.case_drafts import with_drafted_cases
from opik_connect.agent.ollie.events import DecisionReceived, ProposalSent
from opik_connect.agent.ollie.suite_tools import summarize_run
from opik_connect.agent.ollie.tool_base import ToolError, ToolErrorCode, ToolState
from opik_connect.protocol import ProposalDecided, ProposeChangeArgs, Verification

MAX_HELD_PROPOSALS = 2
"""How many unverified proposals the daemon holds back for revision in one session; the next one
is shown to the user whatever its verification says."""
_DECISION_NOTES = {
    "approved": "The user approved; the fix is committed on its branch. Check the suite result.",
    "rejected": "The user rejected the proposal. Address their reason, then propose again.",
    "stale": "The files changed before the user decided. Read them again, then propose anew.",
}


def _with_session_defaults(state: ToolState, args: ProposeChangeArgs) -> ProposeChangeArgs:
    subject = state.subject
    return args.model_copy(
        update={
            "trace_id": args.trace_id or subject.trace_id,
            "suite": args.suite or subject.suite,
            "test_case_ids": args.test_case_ids or list(subject.case_ids),
        }
    )


async def propose_change(state: ToolState, args: ProposeChangeArgs) -> str:
    args = await with_drafted_cases(state, _with_session_defaults(state, args))
    hold = state.held_proposals < MAX_HELD_PROPOSALS
    proposed = await state.runner.propose_change(
        args.model_copy(update={"hold_if_unverified": hold})
    )
    state.proposal_ids.append(proposed.proposal_id)
    check = proposed.verification
    await state.emitter.emit(
        ProposalSent,
        proposal_id=proposed.proposal_id,
        title=args.title,
        files=proposed.files,
        diff=proposed.diff,
        verification=check.summary if check is not None else None,
        held=proposed.status == "held",
    )
    if proposed.status == "held" and check is not None:
        state.held_proposals += 1
        return _held(state, proposed.proposal_id, check)
    try:
        async with asyncio.timeout(state.decision_timeout_s):
            decided = await state.runner.wait_decision(proposed.proposal_id)
    except TimeoutError:
        raise ToolError(
            ToolErrorCode.DECISION_TIMEOUT,
            f"the user has not decided within {state.decision_timeout_s}s; "
            "the proposal stays pending",
            proposal_id=proposed.proposal_id,
        ) from None
    return await _decision(state, decided, check)


def _verification_body(check: Verification) -> dict[str, Any]:
    return {
        "status": check.status,
        "summary": check.summary,
        "items": [
            item.model_dump(mode="json")
            for item in check.items
            if item.target or item.after == "failed"
        ],
        "suite_results": [summarize_run(run) for run in check.suite_results],
    }


def _held(state: ToolState, proposal_id: str, check: Verification) -> str:
    """The user has not seen it: say what failed and how many revisions are left."""
    left = MAX_HELD_PROPOSALS - state.held_proposals
    note = (
        "The daemon built this change and ran the suite: it is not verified, so it was held "
        "back and the user has not seen it. Read the failures, revise, and propose again. "
        + (
            f"{left} more proposal(s) may be held back; after that one is shown to the user "
            "even when it fails, marked as not verified."
            if left > 0
            else "Your next proposal is shown to the user even if it fails, marked."
        )
    )
    body = {
        "proposal_id": proposal_id,
        "status": "held",
        "verification": _verification_body(check),
        "note": note,
    }
    return json.dumps(body, ensure_ascii=False, default=str)


async def _decision(
    state: ToolState, decided: ProposalDecided, check: Verification | None = None
) -> str:
    for run in decided.suite_results:
        state.last_results.record(run)
    state.decisions[decided.proposal_id] = decided.decision
    await state.emitter.emit(
        DecisionReceived,
        proposal_id=decided.proposal_id,
        decision=decided.decision,
        reason=decided.reason,
        branch=decided.branch,
        suite_statuses={run.suite: run.status for run in decided.suite_results},
    )
    body: dict[str, Any] = {
        "proposal_id": decided.proposal_id,
        "decision": decided.decision,
        "reason": decided.reason,
        "branch": decided.branch,
        "commit": decided.commit,
        "suite_results": [summarize_run(run) for run in decided.suite_results],
        "note": _DECISION_NOTES[decided.decision],
    }
    if check is not None:
        body["verification"] = {"status": check.status, "summary": check.summary}
    return json.dumps(body, ensure_ascii=False, default=str)
