"""The platform store's SQL, written once for both backends (SQLite and PostgreSQL).

Placeholders are `?` (the PostgreSQL store turns them into `%s`); every table has an insertion
order column named `rowid` (SQLite's own, an identity column in PostgreSQL), and upserts use
`ON CONFLICT`, which both speak.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

INSERT_SESSION = "INSERT INTO sessions ({columns}) VALUES ({marks})"
UPDATE_SESSION = "UPDATE sessions SET {assignments} WHERE id = ?"
GET_SESSION = "SELECT * FROM sessions WHERE id = ?"
LIST_SESSIONS = "SELECT * FROM sessions ORDER BY created_at DESC, rowid DESC LIMIT ?"

UPSERT_SESSION_EVENT = (
    "INSERT INTO session_events (session_id, seq, type, data, at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (session_id, seq) DO UPDATE SET"
    " type = excluded.type, data = excluded.data, at = excluded.at"
)
LIST_SESSION_EVENTS = "SELECT * FROM session_events WHERE session_id = ? ORDER BY seq"
LIST_SESSION_EVENTS_AFTER = (
    "SELECT * FROM session_events WHERE session_id = ? AND seq > ? ORDER BY seq"
)

INSERT_PROPOSAL = (
    "INSERT INTO proposals (proposal_id, session_id, runner_id, title, reason, trace_id, suite,"
    " test_case_ids, diff, files, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (proposal_id) DO NOTHING"
)
LIST_PROPOSALS = "SELECT * FROM proposals ORDER BY created_at, rowid"
LIST_SESSION_PROPOSALS = "SELECT * FROM proposals WHERE session_id = ? ORDER BY created_at, rowid"
PROPOSAL_SUITE = "SELECT suite FROM proposals WHERE proposal_id = ?"

INSERT_DECISION = (
    "INSERT INTO decisions (proposal_id, runner_id, decision, data, decided_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (proposal_id) DO NOTHING"
)
GET_DECISION = "SELECT * FROM decisions WHERE proposal_id = ?"
LIST_DECISIONS = "SELECT * FROM decisions ORDER BY decided_at, rowid"

UPSERT_SUITE_RESULT = (
    "INSERT INTO suite_results (run_id, runner_id, suite, status, tree, proposal_id,"
    " session_id, data, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (run_id) DO UPDATE SET"
    " proposal_id = COALESCE(suite_results.proposal_id, excluded.proposal_id),"
    " session_id = COALESCE(suite_results.session_id, excluded.session_id)"
)
LIST_SUITE_RESULTS = "SELECT * FROM suite_results{where} ORDER BY recorded_at, rowid"
LAST_FIX_BRANCH_RUN = (
    "SELECT run_id, status, suite FROM suite_results"
    " WHERE proposal_id = ? AND tree != 'user' ORDER BY recorded_at DESC, rowid DESC LIMIT 1"
)
LAST_USER_TREE_RUN = (
    "SELECT run_id, status FROM suite_results"
    " WHERE suite = ? AND tree = 'user' AND proposal_id IS NULL"
    " ORDER BY recorded_at DESC, rowid DESC LIMIT 1"
)

INSERT_FIX = (
    "INSERT INTO fixes (proposal_id, runner_id, branch, commit_sha, suite, before_status,"
    " before_run_id, after_status, after_run_id, recorded_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (proposal_id) DO NOTHING"
)
REFRESH_FIX_AFTER = (
    "UPDATE fixes SET after_status = ?, after_run_id = ?, suite = COALESCE(suite, ?)"
    " WHERE proposal_id = ?"
)
GET_FIX = "SELECT * FROM fixes WHERE proposal_id = ?"
LIST_FIXES = "SELECT * FROM fixes ORDER BY recorded_at, rowid"

UPSERT_PAIRING = (
    "INSERT INTO pairings (runner_id, data, updated_at) VALUES (?, ?, ?)"
    " ON CONFLICT (runner_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at"
)
GET_PAIRING = "SELECT data FROM pairings WHERE runner_id = ?"
LIST_PAIRINGS = "SELECT runner_id, data FROM pairings ORDER BY rowid"
DELETE_PAIRING = "DELETE FROM pairings WHERE runner_id = ?"


class StoreTx(Protocol):
    """One backend's connection inside a transaction (or a single read): run the SQL above."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; the number of rows it wrote."""
        ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...
