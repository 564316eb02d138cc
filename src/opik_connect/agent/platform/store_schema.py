"""The platform store's SQLite file: its schema, migrations and how its connection is opened.

PostgreSQL has its own migrations (pg_migrations/, alembic); both describe the same tables.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from opik_connect.config import user_state_dir

SCHEMA_VERSION = 2
STORE_FILENAME = "platform.sqlite3"

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

_SCHEMA_V2 = """
CREATE TABLE pairings (
    runner_id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""

_MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1, 2: _SCHEMA_V2}
"""user_version N -> N+1 (key N+1). A new version adds a script here; none is ever edited."""


class StoreError(Exception):
    """The store file cannot be used (e.g. written by a newer opik-connect)."""


def default_store_path() -> Path:
    return user_state_dir() / STORE_FILENAME


def _create_private(path: Path) -> None:
    """Create the file 0600 before SQLite opens it: SQLite would honour the umask instead."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def open_connection(path: Path) -> sqlite3.Connection:
    """Open (creating 0600 and migrating as needed) the store's one connection."""
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
