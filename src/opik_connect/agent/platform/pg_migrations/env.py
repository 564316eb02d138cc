"""alembic's entry for the platform store's PostgreSQL schema (run by store_postgres.py)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

MIGRATION_LOCK = 0x6F70_696B  # pg_advisory_xact_lock key: replicas starting together migrate once


def run_migrations() -> None:
    engine = create_engine(context.config.attributes["url"], poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, transactional_ddl=True)
            with context.begin_transaction():
                connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("the platform store migrates online only")
run_migrations()
