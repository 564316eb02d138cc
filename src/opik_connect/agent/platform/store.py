"""The embedded platform's memory: sessions, proposals, decisions, suite results and fixes.

One SQLite file (mode 0600) under the state dir, so `ask` from another terminal and a later
`opik-connect` can read back what Ollie did and what the user decided. sqlite3 blocks, so every
call runs on a worker thread behind one lock; one connection keeps writes ordered.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from opik_connect.config import user_state_dir
from opik_connect.protocol import (
    ProposalDecided,
    ProposeChangeArgs,
    ProposeChangeResult,
    SuiteResult,
    SuiteRunSummary,
)

SCHEMA_VERSION = 1
STORE_FILENAME = "platform.sqlite3"

T = TypeVar("T")

_SCHEMA_V1 = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    runner_id TEXT,
    runner_name TEXT,
    question TEXT NOT NULL,
    trace_id TEXT,
    suite TEXT,
    case_ids TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL,
    final_answer TEXT,
    error TEXT,
    transcript_path TEXT,
    usage TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE TABLE session_events (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE proposals (
    proposal_id TEXT PRIMARY KEY,
    session_id TEXT,
    runner_id TEXT NOT NULL,
    title TEXT NOT NULL,
    reason TEXT NOT NULL,
    trace_id TEXT,
    suite TEXT,
    test_case_ids TEXT NOT NULL DEFAULT '[]',
    diff TEXT NOT NULL,
    files TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL
);
CREATE TABLE decisions (
    proposal_id TEXT PRIMARY KEY,
    runner_id TEXT NOT NULL,
    decision TEXT NOT NULL,
    data TEXT NOT NULL,
    decided_at REAL NOT NULL
);
CREATE TABLE suite_results (
    run_id TEXT PRIMARY KEY,
    runner_id TEXT NOT NULL,
    suite TEXT NOT NULL,
    status TEXT NOT NULL,
    tree TEXT NOT NULL,
    proposal_id TEXT,
    session_id TEXT,
    data TEXT NOT NULL,
    recorded_at REAL NOT NULL
);
CREATE INDEX suite_results_by_suite ON suite_results (suite, recorded_at);
CREATE TABLE fixes (
    proposal_id TEXT PRIMARY KEY,
    runner_id TEXT NOT NULL,
    branch TEXT,
    commit_sha TEXT,
    suite TEXT,
    before_status TEXT,
    before_run_id TEXT,
    after_status TEXT,
    after_run_id TEXT,
    recorded_at REAL NOT NULL
);
"""

_MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1}
"""user_version N -> N+1 (key N+1). A new version adds a script here; none is ever edited."""


class StoreError(Exception):
    """The store file cannot be used (e.g. written by a newer opik-connect)."""


class SessionRecord(BaseModel):
    id: str
    runner_id: str | None = None
    runner_name: str | None = None
    question: str
    trace_id: str | None = None
    suite: str | None = None
    case_ids: list[str] = Field(default_factory=list)
    status: str = "pending"
    final_answer: str | None = None
    error: str | None = None
    transcript_path: str | None = None
    usage: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None


class SessionEventRecord(BaseModel):
    session_id: str
    seq: int
    type: str
    data: dict[str, Any]
    at: float


class SentProposalRecord(BaseModel):
    proposal_id: str
    session_id: str | None
    runner_id: str
    title: str
    reason: str
    trace_id: str | None = None
    suite: str | None = None
    test_case_ids: list[str] = Field(default_factory=list)
    diff: str
    files: list[dict[str, Any]] = Field(default_factory=list)
    created_at: float


class DecisionRecord(BaseModel):
    runner_id: str
    decided_at: float
    decision: ProposalDecided


class SuiteResultRecord(BaseModel):
    runner_id: str
    proposal_id: str | None = None
    session_id: str | None = None
    recorded_at: float
    run: SuiteRunSummary


class FixOutcomeRecord(BaseModel):
    """An approved proposal: where it was committed and what it did to its suite."""

    proposal_id: str
    runner_id: str
    branch: str | None = None
    commit: str | None = None
    suite: str | None = None
    before_status: str | None = None
    before_run_id: str | None = None
    after_status: str | None = None
    after_run_id: str | None = None
    recorded_at: float


_SESSION_COLUMNS = tuple(SessionRecord.model_fields)
_JSON_SESSION_COLUMNS = {"case_ids", "usage"}


def default_store_path() -> Path:
    return user_state_dir() / STORE_FILENAME


def _create_private(path: Path) -> None:
    """Create the file 0600 before SQLite opens it: SQLite would honour the umask instead."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


class PlatformStore:
    """Async facade over one SQLite connection. Open with `await PlatformStore.open(path)`."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    async def open(cls, path: Path | None = None) -> PlatformStore:
        path = path or default_store_path()
        conn = await asyncio.to_thread(cls._connect, path)
        return cls(path, conn)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        _create_private(path)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        try:
            _migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        await self._run(self._conn.close)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        def locked() -> T:
            with self._lock:
                return fn(*args)

        return await asyncio.to_thread(locked)

    async def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        def write() -> None:
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.execute(sql, params)

        await self._run(write)

    async def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return await self._run(lambda: self._conn.execute(sql, params).fetchall())

    # --- sessions ------------------------------------------------------------------------------

    async def create_session(self, record: SessionRecord) -> None:
        values = _session_values(record.model_dump())
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        await self._execute(
            f"INSERT INTO sessions ({columns}) VALUES ({marks})", tuple(values.values())
        )

    async def update_session(self, session_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(_SESSION_COLUMNS) | ({"id"} & set(fields))
        if unknown:
            raise ValueError(f"cannot update session fields {sorted(unknown)}")
        values = _session_values(fields)
        assignments = ", ".join(f"{column} = ?" for column in values)
        await self._execute(
            f"UPDATE sessions SET {assignments} WHERE id = ?", (*values.values(), session_id)
        )

    async def get_session(self, session_id: str) -> SessionRecord | None:
        rows = await self._fetch("SELECT * FROM sessions WHERE id = ?", (session_id,))
        return _session_from_row(rows[0]) if rows else None

    async def list_sessions(self, limit: int = 100) -> list[SessionRecord]:
        rows = await self._fetch(
            "SELECT * FROM sessions ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)
        )
        return [_session_from_row(row) for row in rows]

    async def add_session_event(
        self, session_id: str, seq: int, type_: str, data: dict[str, Any]
    ) -> None:
        await self._execute(
            "INSERT OR REPLACE INTO session_events (session_id, seq, type, data, at)"
            " VALUES (?, ?, ?, ?, ?)",
            (session_id, seq, type_, _dumps(data), time.time()),
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

    # --- proposals and decisions ---------------------------------------------------------------

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
                _dumps(args.test_case_ids),
                result.diff,
                _dumps([stat.model_dump() for stat in result.files]),
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
        return [_proposal_from_row(row) for row in rows]

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
                    _insert_suite_result(self._conn, runner_id, run, decided.proposal_id, None)
                if decided.decision == "approved":
                    _upsert_fix(self._conn, runner_id, decided, now)

        await self._run(write)

    async def get_decision(self, proposal_id: str) -> DecisionRecord | None:
        rows = await self._fetch("SELECT * FROM decisions WHERE proposal_id = ?", (proposal_id,))
        return _decision_from_row(rows[0]) if rows else None

    async def list_decisions(self) -> list[DecisionRecord]:
        rows = await self._fetch("SELECT * FROM decisions ORDER BY decided_at, rowid")
        return [_decision_from_row(row) for row in rows]

    # --- suite results and fixes ---------------------------------------------------------------

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
                _insert_suite_result(self._conn, runner_id, run, proposal_id, session_id)
                if proposal_id is not None:
                    _refresh_fix_after(self._conn, proposal_id, run)

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
        return [_suite_result_from_row(row) for row in rows]

    async def get_fix(self, proposal_id: str) -> FixOutcomeRecord | None:
        rows = await self._fetch("SELECT * FROM fixes WHERE proposal_id = ?", (proposal_id,))
        return _fix_from_row(rows[0]) if rows else None

    async def list_fixes(self) -> list[FixOutcomeRecord]:
        rows = await self._fetch("SELECT * FROM fixes ORDER BY recorded_at, rowid")
        return [_fix_from_row(row) for row in rows]

    # --- events from runners -------------------------------------------------------------------

    async def record_event(self, runner_id: str, event: BaseModel) -> None:
        """Record a daemon event the store cares about; others (heartbeats, file changes) pass."""
        if isinstance(event, ProposalDecided):
            await self.record_decision(runner_id, event)
        elif isinstance(event, SuiteResult):
            await self.record_suite_result(runner_id, event.run, event.proposal_id)


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store schema v{version} is newer than this opik-connect (v{SCHEMA_VERSION});"
            " upgrade opik-connect"
        )
    while version < SCHEMA_VERSION:
        version += 1
        with conn:
            conn.execute("BEGIN")
            for statement in _MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _session_values(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _dumps(value) if key in _JSON_SESSION_COLUMNS else value
        for key, value in fields.items()
    }


def _session_from_row(row: sqlite3.Row) -> SessionRecord:
    data = dict(row)
    for key in _JSON_SESSION_COLUMNS:
        data[key] = json.loads(data[key])
    return SessionRecord.model_validate(data)


def _proposal_from_row(row: sqlite3.Row) -> SentProposalRecord:
    data = dict(row)
    data["test_case_ids"] = json.loads(data["test_case_ids"])
    data["files"] = json.loads(data["files"])
    return SentProposalRecord.model_validate(data)


def _decision_from_row(row: sqlite3.Row) -> DecisionRecord:
    return DecisionRecord(
        runner_id=row["runner_id"],
        decided_at=row["decided_at"],
        decision=ProposalDecided.model_validate_json(row["data"]),
    )


def _suite_result_from_row(row: sqlite3.Row) -> SuiteResultRecord:
    return SuiteResultRecord(
        runner_id=row["runner_id"],
        proposal_id=row["proposal_id"],
        session_id=row["session_id"],
        recorded_at=row["recorded_at"],
        run=SuiteRunSummary.model_validate_json(row["data"]),
    )


def _fix_from_row(row: sqlite3.Row) -> FixOutcomeRecord:
    data = dict(row)
    data["commit"] = data.pop("commit_sha")
    return FixOutcomeRecord.model_validate(data)


def _insert_suite_result(
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


def _upsert_fix(
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


def _refresh_fix_after(conn: sqlite3.Connection, proposal_id: str, run: SuiteRunSummary) -> None:
    """A suite rerun on a fix branch that arrives after the decision becomes the fix's 'after'."""
    if run.tree == "user":
        return
    conn.execute(
        "UPDATE fixes SET after_status = ?, after_run_id = ?,"
        " suite = COALESCE(suite, ?) WHERE proposal_id = ?",
        (run.status, run.run_id, run.suite, proposal_id),
    )
