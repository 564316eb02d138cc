"""The embedded platform's memory: sessions, proposals, decisions, suite results and fixes.

One SQLite file (mode 0600) under the state dir, so `ask` from another terminal and a later
`opik-connect` can read back what Ollie did and what the user decided. sqlite3 blocks, so every
call runs on a worker thread behind one lock; one connection keeps writes ordered.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from opik_connect.agent.platform.store_fixes import (
    insert_suite_result,
    refresh_fix_after,
    upsert_fix,
)
from opik_connect.agent.platform.store_records import (
    SESSION_COLUMNS,
    DecisionRecord,
    FixOutcomeRecord,
    SentProposalRecord,
    SessionEventRecord,
    SessionRecord,
    SuiteResultRecord,
    decision_from_row,
    dumps_json,
    fix_from_row,
    proposal_from_row,
    session_from_row,
    session_values,
    suite_result_from_row,
)
from opik_connect.agent.platform.store_schema import default_store_path, open_connection
from opik_connect.agent.sqlite_off_loop import SqliteOffLoop
from opik_connect.protocol import (
    ProposalDecided,
    ProposeChangeArgs,
    ProposeChangeResult,
    SuiteResult,
    SuiteRunSummary,
)


class PlatformStore(SqliteOffLoop):
    """Async facade over one SQLite connection. Open with `await PlatformStore.open(path)`."""

    @classmethod
    async def open(cls, path: Path | None = None) -> PlatformStore:
        path = path or default_store_path()
        conn = await asyncio.to_thread(open_connection, path)
        return cls(path, conn)

    async def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        def write() -> None:
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.execute(sql, params)

        await self._run(write)

    async def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return await self._run(lambda: self._conn.execute(sql, params).fetchall())

    async def create_session(self, record: SessionRecord) -> None:
        values = session_values(record.model_dump())
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        await self._execute(
            f"INSERT INTO sessions ({columns}) VALUES ({marks})", tuple(values.values())
        )

    async def update_session(self, session_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(SESSION_COLUMNS) | ({"id"} & set(fields))
        if unknown:
            raise ValueError(f"cannot update session fields {sorted(unknown)}")
        values = session_values(fields)
        assignments = ", ".join(f"{column} = ?" for column in values)
        await self._execute(
            f"UPDATE sessions SET {assignments} WHERE id = ?", (*values.values(), session_id)
        )

    async def get_session(self, session_id: str) -> SessionRecord | None:
        rows = await self._fetch("SELECT * FROM sessions WHERE id = ?", (session_id,))
        return session_from_row(rows[0]) if rows else None

    async def list_sessions(self, limit: int = 100) -> list[SessionRecord]:
        rows = await self._fetch(
            "SELECT * FROM sessions ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)
        )
        return [session_from_row(row) for row in rows]

    async def add_session_event(
        self, session_id: str, seq: int, type_: str, data: dict[str, Any]
    ) -> None:
        await self._execute(
            "INSERT OR REPLACE INTO session_events (session_id, seq, type, data, at)"
            " VALUES (?, ?, ?, ?, ?)",
            (session_id, seq, type_, dumps_json(data), time.time()),
        )

    async def session_events(self, session_id: str) -> list[SessionEventRecord]:
        rows = await self._fetch(
            "SELECT * FROM session_events WHERE session_id = ? ORDER BY seq", (session_id,)
        )
        return [
            SessionEventRecord(
                session_id=row["session_id"],
                seq=row["seq"],
                type=row["type"],
                data=json.loads(row["data"]),
                at=row["at"],
            )
            for row in rows
        ]

    async def record_proposal(
        self,
        runner_id: str,
        args: ProposeChangeArgs,
        result: ProposeChangeResult,
        session_id: str | None = None,
    ) -> None:
        await self._execute(
            "INSERT OR IGNORE INTO proposals (proposal_id, session_id, runner_id, title, reason,"
            " trace_id, suite, test_case_ids, diff, files, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                result.proposal_id,
                session_id,
                runner_id,
                args.title,
                args.reason,
                args.trace_id,
                args.suite,
                dumps_json(args.test_case_ids),
                result.diff,
                dumps_json([stat.model_dump() for stat in result.files]),
                time.time(),
            ),
        )

    async def list_proposals(self, session_id: str | None = None) -> list[SentProposalRecord]:
        if session_id is None:
            rows = await self._fetch("SELECT * FROM proposals ORDER BY created_at, rowid")
        else:
            rows = await self._fetch(
                "SELECT * FROM proposals WHERE session_id = ? ORDER BY created_at, rowid",
                (session_id,),
            )
        return [proposal_from_row(row) for row in rows]

    async def record_decision(self, runner_id: str, decided: ProposalDecided) -> None:
        """Record a decision, the suite runs it carries and, when approved, the fix.

        The same decision arrives twice (the event and Ollie's wait); the first copy wins.
        """
        now = time.time()

        def write() -> None:
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.execute(
                    "INSERT OR IGNORE INTO decisions (proposal_id, runner_id, decision, data,"
                    " decided_at) VALUES (?, ?, ?, ?, ?)",
                    (
                        decided.proposal_id,
                        runner_id,
                        decided.decision,
                        decided.model_dump_json(),
                        now,
                    ),
                )
                for run in decided.suite_results:
                    insert_suite_result(self._conn, runner_id, run, decided.proposal_id, None)
                if decided.decision == "approved":
                    upsert_fix(self._conn, runner_id, decided, now)

        await self._run(write)

    async def get_decision(self, proposal_id: str) -> DecisionRecord | None:
        rows = await self._fetch("SELECT * FROM decisions WHERE proposal_id = ?", (proposal_id,))
        return decision_from_row(rows[0]) if rows else None

    async def list_decisions(self) -> list[DecisionRecord]:
        rows = await self._fetch("SELECT * FROM decisions ORDER BY decided_at, rowid")
        return [decision_from_row(row) for row in rows]

    async def record_suite_result(
        self,
        runner_id: str,
        run: SuiteRunSummary,
        proposal_id: str | None = None,
        session_id: str | None = None,
    ) -> None:
        """Keep one row per run id; a later copy only fills in a missing proposal or session."""

        def write() -> None:
            with self._conn:
                self._conn.execute("BEGIN")
                insert_suite_result(self._conn, runner_id, run, proposal_id, session_id)
                if proposal_id is not None:
                    refresh_fix_after(self._conn, proposal_id, run)

        await self._run(write)

    async def list_suite_results(
        self, suite: str | None = None, proposal_id: str | None = None
    ) -> list[SuiteResultRecord]:
        clauses, params = [], []
        if suite is not None:
            clauses.append("suite = ?")
            params.append(suite)
        if proposal_id is not None:
            clauses.append("proposal_id = ?")
            params.append(proposal_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._fetch(
            f"SELECT * FROM suite_results{where} ORDER BY recorded_at, rowid", tuple(params)
        )
        return [suite_result_from_row(row) for row in rows]

    async def get_fix(self, proposal_id: str) -> FixOutcomeRecord | None:
        rows = await self._fetch("SELECT * FROM fixes WHERE proposal_id = ?", (proposal_id,))
        return fix_from_row(rows[0]) if rows else None

    async def list_fixes(self) -> list[FixOutcomeRecord]:
        rows = await self._fetch("SELECT * FROM fixes ORDER BY recorded_at, rowid")
        return [fix_from_row(row) for row in rows]

    async def record_event(self, runner_id: str, event: BaseModel) -> None:
        """Record a daemon event the store cares about; others (heartbeats, file changes) pass."""
        if isinstance(event, ProposalDecided):
            await self.record_decision(runner_id, event)
        elif isinstance(event, SuiteResult):
            await self.record_suite_result(runner_id, event.run, event.proposal_id)
