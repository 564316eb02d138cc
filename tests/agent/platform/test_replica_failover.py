"""A replica killed with SIGKILL mid-session: its daemon reconnects to the other, nothing lost.

The daemon knows one URL, a loopback proxy standing in for the load balancer. Replica A (a child
process) holds the daemon's link; replica B (this process) runs the Ollie session. Once Ollie has
proposed, A is killed outright and the proxy sends new connections to B. The user then approves in
the daemon: the decision, still in the daemon's journal, reaches B once, and Ollie finishes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from fix_flow_testkit import FIX_EDIT, make_refund_project
from link_testkit import make_link
from replica_testkit import (
    HeldRead,
    ReplicaProcess,
    SwitchProxy,
    daemon_at,
    pair_behind,
    replica,
    replica_process,
    router_of,
    scripted_ollie,
    wait_connections_gone,
    wait_location,
)

from fixtures.scripted_messages_api import ScriptedMessagesAPI, text_turn, tool_turn
from opik_connect.agent.platform.replica_lost_sessions import LOST_SESSION_ERROR
from opik_connect.agent.platform.store_records import SessionRecord
from opik_connect.connect.terminal.ask_client import PlatformAddress, ask_stream, read_json
from opik_connect.link.auth import new_activation_key
from opik_connect.protocol import AskEvent, AskRequest, ReadFileArgs

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("no_ambient_settings")]

FINAL = "The fix is approved and the agent file was read again after the failover."


def script() -> list[dict]:
    """Read, propose, then (after the decision) read again: a command after the failover."""
    return [
        tool_turn("read_file", {"path": "agentpkg/agent.py"}, match="refund", tool_id="toolu_read"),
        tool_turn(
            "propose_change",
            {"title": "Answer the right refund", "reason": "says 20", "edits": [FIX_EDIT]},
            match="toolu_read",
            tool_id="toolu_propose",
        ),
        tool_turn(
            "read_file",
            {"path": "agentpkg/__init__.py"},
            match=["toolu_propose", "approved"],
            tool_id="toolu_again",
        ),
        text_turn(FINAL, match="toolu_again"),
    ]


async def test_replica_sigkill_mid_session_daemon_reconnects_to_the_other(
    tmp_path: Path, postgres_dsn: str
) -> None:
    repo = make_refund_project(tmp_path / "project")
    events: list[AskEvent] = []
    proposed = asyncio.Event()
    with ScriptedMessagesAPI(script()) as api:
        ollie = scripted_ollie(tmp_path, api.url, max_turns=8)
        a = await replica_process(postgres_dsn, tmp_path / "a")
        again: ReplicaProcess | None = None
        try:
            async with (
                replica(postgres_dsn, **ollie) as (b, b_services),
                SwitchProxy(a.port) as proxy,
            ):
                router = router_of(b_services)
                runner_id = await pair_behind(b, proxy.url, repo)
                daemon, fixes = daemon_at(repo, proxy.url)
                async with daemon:
                    await wait_location(router, runner_id, a.replica_id)
                    address = PlatformAddress(url=b.url, token=b.operator_token)
                    request = AskRequest(question="Why is the refund answer wrong?")

                    async def follow() -> None:
                        async for event in ask_stream(address, request):
                            events.append(event)
                            if event.type == "proposal_sent":
                                proposed.set()

                    asking = asyncio.create_task(follow())
                    async with asyncio.timeout(40):
                        await proposed.wait()

                    proxy.target = b.port
                    await a.kill()
                    await wait_location(router, runner_id, router.replica_id)

                    assert fixes.service is not None
                    [pending] = fixes.service.pending()
                    await fixes.service.approve(pending.id, by="test")
                    async with asyncio.timeout(40):
                        await asking
            # A replica started afterwards reads it all back from the shared store.
            again = await replica_process(postgres_dsn, tmp_path / "a2")
            restarted = PlatformAddress(url=again.url, token=again.token)
            detail = await read_json(restarted, f"/v1/sessions/{events[0].session_id}")
        finally:
            await a.kill()
            if again is not None:
                await again.kill()

    assert a.returncode == -9
    assert api.unmatched == [] and api.remaining == 0
    types = [event.type for event in events]
    assert types.count("proposal_sent") == 1 and types.count("decision_received") == 1
    by_type = {event.type: event.data for event in events}
    assert by_type["decision_received"]["decision"] == "approved"
    assert (by_type["result"]["status"], by_type["result"]["final_answer"]) == ("completed", FINAL)
    assert [record.id for record in fixes.service.journal.all()] == [pending.id]
    async with await psycopg.AsyncConnection.connect(postgres_dsn) as conn:
        cursor = await conn.execute("SELECT proposal_id, decision FROM decisions")
        assert await cursor.fetchall() == [(pending.id, "approved")]
    assert detail["session"]["status"] == "completed"
    assert [p["proposal_id"] for p in detail["proposals"]] == [pending.id]
    assert [d["decision"]["decision"] for d in detail["decisions"]] == ["approved"]
    assert [e["type"] for e in detail["events"]] == types


async def test_replica_command_in_flight_follows_its_daemon_after_sigkill(
    tmp_path: Path, postgres_dsn: str
) -> None:
    held = HeldRead()
    a = await replica_process(postgres_dsn, tmp_path / "a")
    try:
        async with (
            replica(postgres_dsn) as (b, b_services),
            SwitchProxy(a.port) as proxy,
        ):
            router = router_of(b_services)
            record = b.pre_pair(uuid.uuid4().hex, new_activation_key())
            await b.pairings.settled()
            link = make_link(proxy.url, record, {"ReadFile": held.read_file}, backoff_max_s=0.5)
            serving = asyncio.create_task(link.run())
            try:
                await wait_location(router, record.runner_id, a.replica_id)
                runner = router.runner(record.runner_id)
                reading = asyncio.create_task(runner.read_file(ReadFileArgs(path="notes.txt")))
                async with asyncio.timeout(20):
                    await held.started.wait()

                proxy.target = b.port
                await a.kill()
                await wait_location(router, record.runner_id, router.replica_id)
                held.release.set()
                async with asyncio.timeout(20):
                    result = await reading
            finally:
                await link.stop()
                await serving
    finally:
        await a.kill()

    assert result.content == "read notes.txt"
    assert held.runs == 1  # re-sent under the same id to B: answered, not run again


async def test_replica_sigkill_ends_the_sessions_it_was_running(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """A (a child process) runs a session, held in the daemon's ReadFile, and is killed: B's
    presence sweep records that session as failed (replica_lost); B's own session runs on."""
    held = HeldRead()
    read = tool_turn("read_file", {"path": "notes.txt"}, tool_id="toolu_read")
    with ScriptedMessagesAPI([read]) as api:
        env = {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": api.url}
        a = await replica_process(postgres_dsn, tmp_path / "a", env)
        try:
            async with replica(postgres_dsn) as (b, b_services):
                router = router_of(b_services)
                assert b_services.store is not None
                record = b.pre_pair(uuid.uuid4().hex, new_activation_key())
                await b.pairings.settled()
                link = make_link(a.url, record, {"ReadFile": held.read_file}, backoff_max_s=0.5)
                serving = asyncio.create_task(link.run())
                address = PlatformAddress(url=a.url, token=a.token)
                try:
                    await wait_location(router, record.runner_id, a.replica_id)
                    asking = ask_stream(address, AskRequest(question="What do the notes say?"))
                    async with asyncio.timeout(40):
                        accepted = await anext(asking)
                        await held.started.wait()
                    on_b = SessionRecord(
                        id="on-b", question="q", status="running", created_at=time.time()
                    )
                    await b_services.store.create_session(on_b)
                    running = await b_services.store.get_session(accepted.session_id)

                    await a.kill()
                    await asking.aclose()
                    await wait_connections_gone(postgres_dsn, a.replica_id)
                    await router.presence.sweep()
                    lost = await b_services.store.get_session(accepted.session_id)
                    still = await b_services.store.get_session("on-b")
                finally:
                    held.release.set()
                    await link.stop()
                    await serving
        finally:
            await a.kill()
        async with await psycopg.AsyncConnection.connect(postgres_dsn) as conn:
            cursor = await conn.execute("SELECT id, replica_id FROM sessions ORDER BY id")
            owners = dict(await cursor.fetchall())

    assert running is not None and running.status == "running"
    assert lost is not None and (lost.status, lost.error) == ("failed", LOST_SESSION_ERROR)
    assert lost.finished_at is not None and lost.finished_at >= running.created_at
    assert still is not None and still.status == "running"  # B is alive: its session is not lost
    assert owners == {accepted.session_id: a.replica_id, "on-b": router.replica_id}
