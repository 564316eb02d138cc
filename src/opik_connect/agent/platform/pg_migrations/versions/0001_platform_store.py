"""The platform store's tables, as SQLite's schema v2 has them (store_schema.py).

Each table has `rowid`, an identity column, so the shared SQL orders by insertion on both
backends; JSON stays TEXT so both backends map rows the same way.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROWID = "rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE"

TABLES = f"""
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
    usage TEXT NOT NULL DEFAULT '{{}}',
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    {ROWID}
);
CREATE TABLE session_events (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    {ROWID},
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
    created_at DOUBLE PRECISION NOT NULL,
    {ROWID}
);
CREATE TABLE decisions (
    proposal_id TEXT PRIMARY KEY,
    runner_id TEXT NOT NULL,
    decision TEXT NOT NULL,
    data TEXT NOT NULL,
    decided_at DOUBLE PRECISION NOT NULL,
    {ROWID}
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
    recorded_at DOUBLE PRECISION NOT NULL,
    {ROWID}
);
CREATE INDEX suite_results_by_suite ON suite_results (suite, recorded_at);
CREATE INDEX suite_results_by_proposal ON suite_results (proposal_id);
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
    recorded_at DOUBLE PRECISION NOT NULL,
    {ROWID}
);
CREATE TABLE pairings (
    runner_id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    {ROWID}
);
"""


def upgrade() -> None:
    for statement in TABLES.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    for table in ("pairings", "fixes", "suite_results", "decisions", "proposals"):
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP TABLE session_events")
    op.execute("DROP TABLE sessions")
