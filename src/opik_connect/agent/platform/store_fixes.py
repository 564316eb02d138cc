"""The store's SQL for suite results and the fix outcomes (before/after runs) they decide."""

from __future__ import annotations

import sqlite3
import time

from opik_connect.protocol import ProposalDecided, SuiteRunSummary


def insert_suite_result(
    conn: sqlite3.Connection,
    runner_id: str,
    run: SuiteRunSummary,
    proposal_id: str | None,
    session_id: str | None,
) -> None:
    conn.execute(
        "INSERT INTO suite_results (run_id, runner_id, suite, status, tree, proposal_id,"
        " session_id, data, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (run_id) DO UPDATE SET"
        " proposal_id = COALESCE(suite_results.proposal_id, excluded.proposal_id),"
        " session_id = COALESCE(suite_results.session_id, excluded.session_id)",
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


def upsert_fix(
    conn: sqlite3.Connection, runner_id: str, decided: ProposalDecided, now: float
) -> None:
    """Before = the last run of the suite on the user's tree; after = the run on the fix branch."""
    row = conn.execute(
        "SELECT suite FROM proposals WHERE proposal_id = ?", (decided.proposal_id,)
    ).fetchone()
    after: tuple[str, str, str] | None = None
    if decided.suite_results:
        last = decided.suite_results[-1]
        after = (last.run_id, last.status, last.suite)
    else:
        earlier = conn.execute(
            "SELECT run_id, status, suite FROM suite_results"
            " WHERE proposal_id = ? AND tree != 'user' ORDER BY recorded_at DESC, rowid DESC",
            (decided.proposal_id,),
        ).fetchone()
        after = tuple(earlier) if earlier else None
    suite = (row["suite"] if row else None) or (after[2] if after else None)
    before = None
    if suite is not None:
        before = conn.execute(
            "SELECT run_id, status FROM suite_results"
            " WHERE suite = ? AND tree = 'user' AND proposal_id IS NULL"
            " ORDER BY recorded_at DESC, rowid DESC LIMIT 1",
            (suite,),
        ).fetchone()
    conn.execute(
        "INSERT OR IGNORE INTO fixes (proposal_id, runner_id, branch, commit_sha, suite,"
        " before_status, before_run_id, after_status, after_run_id, recorded_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            decided.proposal_id,
            runner_id,
            decided.branch,
            decided.commit,
            suite,
            before["status"] if before else None,
            before["run_id"] if before else None,
            after[1] if after else None,
            after[0] if after else None,
            now,
        ),
    )


def refresh_fix_after(conn: sqlite3.Connection, proposal_id: str, run: SuiteRunSummary) -> None:
    """A suite rerun on a fix branch that arrives after the decision becomes the fix's 'after'."""
    if run.tree == "user":
        return
    conn.execute(
        "UPDATE fixes SET after_status = ?, after_run_id = ?,"
        " suite = COALESCE(suite, ?) WHERE proposal_id = ?",
        (run.status, run.run_id, run.suite, proposal_id),
    )
