"""A lost replica's sessions end with their final `result`, written once however many race."""

from __future__ import annotations

import asyncio

import pytest
from replica_testkit import lost_session, pg_store, replica, router_of

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("no_ambient_settings")]


async def test_replica_racing_sweeps_write_one_final_result_per_lost_session(
    postgres_dsn: str,
) -> None:
    """Sessions lost after both replicas started (each sweeps as it starts), then eight sweeps
    on two replicas at once."""
    ids = [f"lost-{n}" for n in range(5)]
    async with (
        replica(postgres_dsn) as (_b, b_services),
        replica(postgres_dsn) as (_c, c_services),
    ):
        for n, session_id in enumerate(ids):
            await lost_session(postgres_dsn, session_id, events=n)
        routers = (router_of(b_services), router_of(c_services)) * 4
        await asyncio.gather(*(router.presence.sweep() for router in routers))
        store = pg_store(b_services)
        stored = {session_id: await store.session_events(session_id) for session_id in ids}
        sessions = {session_id: await store.get_session(session_id) for session_id in ids}

    for n, session_id in enumerate(ids):
        session = sessions[session_id]
        assert session is not None and session.status == "failed"
        types = [event.type for event in stored[session_id]]
        assert types == ["turn_started"] * n + ["result"]
        assert [event.seq for event in stored[session_id]] == list(range(1, n + 2))
        assert stored[session_id][-1].data == session.model_dump(mode="json")
