"""Which replica runs each session, so a replica that dies does not leave its sessions running.

sessions.replica_id: the replica that started the session (NULL for rows written before this
revision). A presence sweep (agent/platform/replica_presence.py) ends the pending or running
sessions of a replica PostgreSQL no longer lists; the partial index keeps that sweep cheap.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE sessions ADD COLUMN replica_id TEXT")
    op.execute(
        "CREATE INDEX sessions_unfinished_by_replica ON sessions (replica_id)"
        " WHERE status IN ('pending', 'running')"
    )


def downgrade() -> None:
    op.execute("DROP INDEX sessions_unfinished_by_replica")
    op.execute("ALTER TABLE sessions DROP COLUMN replica_id")
