"""The propose_change tool: send a change to the user, wait for their decision, report it back."""

from __future__ import annotations

import asyncio
import json

from opik_connect.agent.ollie.events import DecisionReceived, ProposalSent
from opik_connect.agent.ollie.suite_tools import summarize_run
from opik_connect.agent.ollie.tool_base import ToolError, ToolErrorCode, ToolState
from opik_connect.protocol import ProposalDecided, ProposeChangeArgs

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
    args = _with_session_defaults(state, args)
    proposed = await state.runner.propose_change(args)
    state.proposal_ids.append(proposed.proposal_id)
    await state.emitter.emit(
        ProposalSent,
        proposal_id=proposed.proposal_id,
        title=args.title,
        files=proposed.files,
        diff=proposed.diff,
    )
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
    return await _decision(state, decided)


async def _decision(state: ToolState, decided: ProposalDecided) -> str:
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
    body = {
        "proposal_id": decided.proposal_id,
        "decision": decided.decision,
        "reason": decided.reason,
        "branch": decided.branch,
        "commit": decided.commit,
        "suite_results": [summarize_run(run) for run in decided.suite_results],
        "note": _DECISION_NOTES[decided.decision],
    }
    return json.dumps(body, ensure_ascii=False, default=str)
