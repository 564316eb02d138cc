"""The store's writes for suite results and the fix outcomes (before/after runs) they decide."""

from __future__ import annotations

import time

from opik_connect.agent.platform import store_sql as sql
from opik_connect.agent.platform.store_sql import StoreTx
from opik_connect.protocol import ProposalDecided, SuiteRunSummary


async def insert_suite_result(
    tx: StoreTx,
    runner_id: str,
    run: SuiteRunSummary,
    proposal_id: str | None,
    session_id: str | None,
) -> None:
    await tx.execute(
        sql.UPSERT_SUITE_RESULT,
        (
            run.run_id,
            runner_id,
            run.suite,
            run.status,
            run.tree,
            proposal_id,
            session_id,
            run.model_dump_json(),
            time.time(),
        ),
    )


async def upsert_fix(tx: StoreTx, runner_id: str, decided: ProposalDecided, now: float) -> None:
    """Before = the last run of the suite on the user's tree; after = the run on the fix branch."""
    proposal = await tx.fetchall(sql.PROPOSAL_SUITE, (decided.proposal_id,))
    after: tuple[str, str, str] | None = None
    if decided.suite_results:
        last = decided.suite_results[-1]
        after = (last.run_id, last.status, last.suite)
    else:
        earlier = await tx.fetchall(sql.LAST_FIX_BRANCH_RUN, (decided.proposal_id,))
        if earlier:
            after = (earlier[0]["run_id"], earlier[0]["status"], earlier[0]["suite"])
    suite = (proposal[0]["suite"] if proposal else None) or (after[2] if after else None)
    before = await tx.fetchall(sql.LAST_USER_TREE_RUN, (suite,)) if suite is not None else []
    await tx.execute(
        sql.INSERT_FIX,
        (
            decided.proposal_id,
            runner_id,
            decided.branch,
            decided.commit,
            suite,
            before[0]["status"] if before else None,
            before[0]["run_id"] if before else None,
            after[1] if after else None,
            after[0] if after else None,
            now,
        ),
    )


async def refresh_fix_after(tx: StoreTx, proposal_id: str, run: SuiteRunSummary) -> None:
    """A suite rerun on a fix branch that arrives after the decision becomes the fix's 'after'."""
    if run.tree == "user":
        return
    await tx.execute(sql.REFRESH_FIX_AFTER, (run.status, run.run_id, run.suite, proposal_id))
