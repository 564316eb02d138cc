"""Ending the sessions of a replica whose process is gone: failed (replica_lost), with a result.

A session's replica writes its final `result` event itself; one killed outright cannot, so the
sweep that finds it gone (agent/platform/replica_presence.py, on any replica) writes it: the
session record as failed, exactly what a failing session's last event carries. Marking it and
writing its result is one transaction, and the UPDATE takes only sessions still unfinished, so of
several sweeps racing over the same session, one ends it and writes its result; the others see
it finished. The result's NOTIFY wakes its followers on every replica (replica_follow.py).
"""

from __future__ import annotations

import logging
import time

from psycopg.rows import dict_row

from opik_connect.agent.platform.replica_bus import ReplicaBus
from opik_connect.agent.platform.replica_wire import (
    APPLICATION_PREFIX,
    BROADCAST_CHANNEL,
    POOL_SUFFIX,
    SessionEventMessage,
)
from opik_connect.agent.platform.store_records import SessionRecord, dumps_json, session_from_row

log = logging.getLogger(__name__)

LOST_SESSION_ERROR = "replica_lost: the platform replica running this session stopped"
"""A lost session's error, in the sessions' `code: message` form (agent/ollie/sessions.py)."""

_END_LOST_SESSIONS = """
UPDATE sessions s SET status = 'failed', error = %s, finished_at = extract(epoch FROM now())
WHERE s.status IN ('pending', 'running') AND s.replica_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM pg_stat_activity a
    WHERE a.application_name IN (%s || s.replica_id, %s || s.replica_id || %s)
) RETURNING *
"""
_ADD_RESULT = """
INSERT INTO session_events (session_id, seq, type, data, at)
SELECT %s, COALESCE(MAX(seq), 0) + 1, 'result', %s, %s FROM session_events WHERE session_id = %s
RETURNING seq
"""


async def end_lost_sessions(bus: ReplicaBus) -> list[SessionRecord]:
    """Fail the unfinished sessions of replicas PostgreSQL no longer lists, each with its final
    `result` event; the sessions this call ended."""
    ended: list[SessionRecord] = []
    async with bus.transaction() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            _END_LOST_SESSIONS,
            (LOST_SESSION_ERROR, APPLICATION_PREFIX, APPLICATION_PREFIX, POOL_SUFFIX),
        )
        for row in await cursor.fetchall():
            record = session_from_row(row)
            data = dumps_json(record.model_dump(mode="json"))
            added = await conn.execute(_ADD_RESULT, (record.id, data, time.time(), record.id))
            [(seq,)] = await added.fetchall()
            notice = SessionEventMessage(session_id=record.id, seq=seq).model_dump_json()
            await conn.execute("SELECT pg_notify(%s, %s)", (BROADCAST_CHANNEL, notice))
            log.warning("session %s ended: replica %s is gone", record.id, row["replica_id"])
            ended.append(record)
    return ended
