"""The tables replicas share for routing: where each runner is, taken decisions, pairings."""

from __future__ import annotations

REPLICA_TABLES = """
CREATE TABLE IF NOT EXISTS replica_runners (
    runner_id TEXT PRIMARY KEY,
    replica_id TEXT NOT NULL,
    info JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS replica_payloads (
    id BIGSERIAL PRIMARY KEY,
    body TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS replica_decisions (
    proposal_id TEXT PRIMARY KEY,
    runner_id TEXT NOT NULL,
    replica_id TEXT NOT NULL,
    data JSONB NOT NULL,
    decided_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS replica_pairings (
    runner_id TEXT PRIMARY KEY,
    record JSONB NOT NULL,
    paired_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""
"""replica_payloads holds a message too big for NOTIFY's 8000 bytes; the NOTIFY carries its id.
replica_decisions' primary key is what makes a decision taken once across replicas."""

SCHEMA_LOCK = 0x6F70_696B
"""Advisory lock around the DDL: two replicas starting together do not race on CREATE."""
