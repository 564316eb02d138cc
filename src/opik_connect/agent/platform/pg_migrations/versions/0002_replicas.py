"""The tables platform replicas share for routing (agent/platform/replica_*.py).

replica_runners: where each runner is connected (one row per runner, its replica's id).
replica_payloads: a message too big for NOTIFY's 8000 bytes; the NOTIFY carries its id.
Decisions and pairings are the store's own tables (0001): its primary keys make a decision
taken once across replicas and a pairing known to all of them.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE replica_runners (
            runner_id TEXT PRIMARY KEY,
            replica_id TEXT NOT NULL,
            info JSONB NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE replica_payloads (
            id BIGSERIAL PRIMARY KEY,
            body TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE replica_payloads")
    op.execute("DROP TABLE replica_runners")
