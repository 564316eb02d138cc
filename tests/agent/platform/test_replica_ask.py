"""Two platform replicas on a real PostgreSQL: a daemon on one, `ask` on the other.

Real Ollie (the real SDK against the scripted Messages API) runs on replica B; the daemon, on a
tmp git repo with its proposals and suites, is linked to replica A. Every command Ollie sends
goes B -> PostgreSQL NOTIFY -> A -> daemon and back; the user's "yes" goes daemon -> A, and
reaches B once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest
from fix_flow_testkit import (
    REFUND_FINAL,
    approve_when_proposed,
    make_refund_project,
    refund_fix_script,
)
from replica_testkit import (
    daemon_at,
    pair_behind,
    replica,
    router_of,
    scripted_ollie,
    wait_location,
)

from fixtures.scripted_messages_api import ScriptedMessagesAPI
from opik_connect.connect.terminal.ask_client import PlatformAddress, ask_stream, read_json
from opik_connect.protocol import AskEvent, AskRequest

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("no_ambient_settings")]


async def test_replica_b_asks_a_daemon_linked_to_replica_a(
    tmp_path: Path, postgres_dsn: str
) -> None:
    repo = make_refund_project(tmp_path / "project")
    with ScriptedMessagesAPI(refund_fix_script()) as api:
        ollie = scripted_ollie(tmp_path, api.url, max_turns=8)
        async with (
            replica(postgres_dsn) as (a, a_services),
            replica(postgres_dsn, **ollie) as (b, b_services),
        ):
            runner_id = await pair_behind(b, a.url, repo)  # paired through B, accepted by A
            daemon, fixes = daemon_at(repo, a.url)
            async with daemon:
                await wait_location(
                    router_of(b_services), runner_id, router_of(a_services).replica_id
                )
                assert fixes.service is not None
                user = asyncio.create_task(approve_when_proposed(fixes.service))

                address = PlatformAddress(url=b.url, token=b.operator_token)
                request = AskRequest(question="Why is the refund answer wrong?", suite="refunds")
                events: list[AskEvent] = [e async for e in ask_stream(address, request)]
                proposal_id = await user

                [listed] = await read_json(address, "/v1/runners")
                detail = await read_json(address, f"/v1/sessions/{events[0].session_id}")

    assert api.unmatched == [] and api.remaining == 0
    by_type = {e.type: e.data for e in events}
    assert by_type["suite_ran"]["status"] == "failed"
    assert by_type["decision_received"]["decision"] == "approved"
    assert by_type["decision_received"]["suite_statuses"] == {"refunds": "passed"}
    result = by_type["result"]
    assert (result["status"], result["final_answer"]) == ("completed", REFUND_FINAL)
    assert (listed["runner_id"], listed["connected"]) == (runner_id, True)
    # The daemon was never linked to B: B reached it only through A.
    assert runner_id not in {info.runner_id for info in b.runners()}
    assert runner_id in {info.runner_id for info in a.runners()}
    [proposal] = detail["proposals"]
    assert proposal["proposal_id"] == proposal_id
    [decided] = detail["decisions"]
    assert decided["decision"]["decision"] == "approved"

    async with await psycopg.AsyncConnection.connect(postgres_dsn) as conn:
        cursor = await conn.execute("SELECT proposal_id, decision FROM decisions")
        assert await cursor.fetchall() == [(proposal_id, "approved")]
