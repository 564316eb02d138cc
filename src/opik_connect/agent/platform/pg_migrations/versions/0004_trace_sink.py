"""The trace sink's tables, so every platform replica reads the traces any of them took in.

The same tables as the SQLite sink (agent/traces/sink_store_sqlite.py), read with the same SQL
(sink_store_logic.py): `seq` is the insertion order retention drops by, `data` the merged
document as `json` (key order kept, as SQLite's text keeps it), and the other columns are
derived from it for the filters. `scores.value` is double precision, as SQLite's REAL.
traces_by_start is in the order a listing reads (newest first, traces without a start last).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TABLES = """
CREATE TABLE traces (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    project_name TEXT,
    name TEXT,
    start_time TEXT,
    has_error INTEGER NOT NULL DEFAULT 0,
    text TEXT NOT NULL DEFAULT '',
    data JSON NOT NULL
);
CREATE INDEX traces_by_start ON traces (start_time DESC NULLS LAST, seq DESC);
CREATE INDEX traces_by_name ON traces (name, start_time);
CREATE TABLE trace_tags (
    trace_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (trace_id, tag)
);
CREATE INDEX trace_tags_by_tag ON trace_tags (tag);
CREATE TABLE spans (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    trace_id TEXT NOT NULL,
    start_time TEXT,
    has_error INTEGER NOT NULL DEFAULT 0,
    data JSON NOT NULL
);
CREATE INDEX spans_by_trace ON spans (trace_id, has_error);
CREATE TABLE scores (
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    data JSON NOT NULL,
    PRIMARY KEY (entity, entity_id, name)
);
CREATE INDEX scores_by_value ON scores (entity, name, value);
"""


def upgrade() -> None:
    for statement in _TABLES.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    for table in ("scores", "spans", "trace_tags", "traces"):
        op.execute(f"DROP TABLE {table}")
