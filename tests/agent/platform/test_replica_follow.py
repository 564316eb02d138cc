"""Following a session from any replica on a real PostgreSQL: `/v1/sessions/{id}/stream`.

Replica A runs a real Ollie session (the scripted Messages API) whose ReadFile is held in the
daemon, so followers join while it runs; a follower on replica B gets what a follower on A gets.
When A is killed outright, the survivors' sweep ends the session with its final `result`
(replica_lost), written once however many sweeps race, and B's follower ends with it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from link_testkit import make_link
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from replica_testkit import (
    HeldRead,
    lost_session,
    pg_store,
    replica,
    replica_process,
    router_of,
    scripted_ollie,
    wait_connections_gone,
    wait_location,
)

from fixtures.scripted_messages_api import ScriptedMessagesAPI, text_turn, tool_turn
from opik_connect.agent.platform.replica_lost_sessions import LOST_SESSION_ERROR
from opik_connect.agent.platform.replica_wire import APPLICATION_PREFIX
from opik_connect.agent.platform.store_postgres import PostgresPlatformStore
from opik_connect.agent.platform.store_records import SessionRecord
from opik_connect.connect.terminal.ask_client import (
    AskError,
    PlatformAddress,
    ask_stream,
    follow_stream,
)
from opik_connect.link.auth import new_activation_key
from opik_connect.protocol import AskEvent, AskRequest

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("no_ambient_settings")]

FINAL = "The notes say the refund is 20 euros."
QUESTION = "What do the notes say?"


def read_then_answer() -> list[dict]:
    return [
        tool_turn("read_file", {"path": "notes.txt"}, tool_id="toolu_read"),
        text_turn(FINAL, match="toolu_read"),
    ]


async def collect(stream: AsyncIterator[AskEvent]) -> list[AskEvent]:
    return [event async for event in stream]


class Follower:
    """One follower of a session, collecting its events; `joined` is set at the first."""

    def __init__(self, address: PlatformAddress, session_id: str) -> None:
        self.events: list[AskEvent] = []
        self.joined = asyncio.Event()
        self.task = asyncio.create_task(self._follow(address, session_id))

    async def _follow(self, address: PlatformAddress, session_id: str) -> list[AskEvent]:
        async for event in follow_stream(address, session_id):
            self.events.append(event)
            self.joined.set()
        return self.events


def address_of(platform) -> PlatformAddress:
    return PlatformAddress(url=platform.url, token=platform.operator_token)


async def test_replica_b_follows_a_session_running_on_a_like_a_does(
    tmp_path: Path, postgres_dsn: str
) -> None:
    held = HeldRead()
    with ScriptedMessagesAPI(read_then_answer()) as api:
        ollie = scripted_ollie(tmp_path, api.url, max_turns=4)
        async with (
            replica(postgres_dsn, **ollie) as (a, a_services),
            replica(postgres_dsn) as (b, b_services),
        ):
            record = a.pre_pair(uuid.uuid4().hex, new_activation_key())
            await a.pairings.settled()
            link = make_link(a.url, record, {"ReadFile": held.read_file}, backoff_max_s=0.5)
            serving = asyncio.create_task(link.run())
            try:
                a_router = router_of(a_services)
                await wait_location(a_router, record.runner_id, a_router.replica_id)
                asking = ask_stream(address_of(a), AskRequest(question=QUESTION))
                async with asyncio.timeout(40):
                    accepted = await anext(asking)
                    await held.started.wait()
                session_id = accepted.session_id or ""
                on_a = Follower(address_of(a), session_id)
                on_b = Follower(address_of(b), session_id)
                async with asyncio.timeout(40):
                    await on_a.joined.wait()
                    await on_b.joined.wait()
                while_running = await pg_store(b_services).get_session(session_id)
                held.release.set()
                async with asyncio.timeout(40):
                    asked = [accepted, *[event async for event in asking]]
                    from_a, from_b = await on_a.task, await on_b.task
                    replayed_on_b = await collect(follow_stream(address_of(b), session_id))
                    [missing_on_b] = await collect(follow_stream(address_of(b), "nope"))
                    [missing_on_a] = await collect(follow_stream(address_of(a), "nope"))
                followed_after = router_of(b_services).followers.followed()
            finally:
                await link.stop()
                await serving

    assert api.unmatched == [] and api.remaining == 0
    assert while_running is not None and while_running.status == "running"
    assert from_b == from_a == asked == replayed_on_b
    assert [event.seq for event in from_b] == list(range(1, len(from_b) + 1))
    assert "tool_resulted" in [event.type for event in from_b]  # live, after B joined
    result = from_b[-1]
    assert (result.type, result.data["status"], result.data["final_answer"]) == (
        "result",
        "completed",
        FINAL,
    )
    assert missing_on_b == missing_on_a  # the same session_not_found as on a lone platform
    assert (missing_on_b.type, missing_on_b.data["code"]) == ("error", "session_not_found")
    assert followed_after == set()  # every follower let go


async def test_replica_sigkill_mid_session_ends_the_follower_on_b_with_replica_lost(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """A (a child process) runs the session, held in the daemon's ReadFile; B follows it. A is
    killed: B and C sweep at once, one of them ends the session, and B's follower ends with
    the one final result."""
    held = HeldRead()
    with ScriptedMessagesAPI(read_then_answer()) as api:
        env = {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": api.url}
        a = await replica_process(postgres_dsn, tmp_path / "a", env)
        try:
            async with (
                replica(postgres_dsn) as (b, b_services),
                replica(postgres_dsn) as (_c, c_services),
            ):
                b_router, c_router = router_of(b_services), router_of(c_services)
                record = b.pre_pair(uuid.uuid4().hex, new_activation_key())
                await b.pairings.settled()
                link = make_link(a.url, record, {"ReadFile": held.read_file}, backoff_max_s=0.5)
                serving = asyncio.create_task(link.run())
                a_address = PlatformAddress(url=a.url, token=a.token)
                try:
                    await wait_location(b_router, record.runner_id, a.replica_id)
                    asking = ask_stream(a_address, AskRequest(question=QUESTION))
                    async with asyncio.timeout(40):
                        accepted = await anext(asking)
                        await held.started.wait()
                    session_id = accepted.session_id or ""
                    on_b = Follower(address_of(b), session_id)
                    async with asyncio.timeout(40):
                        await on_b.joined.wait()

                    await a.kill()
                    await asking.aclose()
                    await wait_connections_gone(postgres_dsn, a.replica_id)
                    sweeps = [router.presence.sweep() for router in (b_router, c_router) * 3]
                    await asyncio.gather(*sweeps)
                    async with asyncio.timeout(40):
                        from_b = await on_b.task
                    stored = await pg_store(b_services).session_events(session_id)
                    session = await pg_store(b_services).get_session(session_id)
                finally:
                    held.release.set()
                    await link.stop()
                    await serving
        finally:
            await a.kill()

    assert a.returncode == -9
    assert session is not None and (session.status, session.error) == ("failed", LOST_SESSION_ERROR)
    assert [event.type for event in stored].count("result") == 1
    assert from_b == [
        AskEvent(session_id=session_id, seq=e.seq, type=e.type, data=e.data) for e in stored
    ]
    result = from_b[-1]
    assert result.type == "result" and result.data["error"].startswith("replica_lost: ")
    # The shape of any session's final event: the session's record, as its replica writes it.
    assert result.data == session.model_dump(mode="json")
    assert set(result.data) == set(SessionRecord.model_fields)


async def test_replica_follower_of_a_session_ended_without_its_result_gets_the_record(
    postgres_dsn: str,
) -> None:
    """Its replica died between writing the outcome and writing the result: the follower ends
    with the result that replica would have written (the record), not by hanging."""
    await lost_session(postgres_dsn, "half-done", 2, status="completed", final_answer=FINAL)
    async with replica(postgres_dsn) as (b, b_services):
        store = pg_store(b_services)
        async with asyncio.timeout(40):
            events = await collect(follow_stream(address_of(b), "half-done"))
        session = await store.get_session("half-done")

    assert session is not None and session.status == "completed"
    assert [(event.seq, event.type) for event in events] == [
        (1, "turn_started"),
        (2, "turn_started"),
        (3, "result"),
    ]
    assert events[-1].data == session.model_dump(mode="json")


async def test_replica_follower_reads_again_once_its_replica_listens_again(
    postgres_dsn: str,
) -> None:
    """B's LISTEN backend is terminated while PostgreSQL refuses new connections, and the
    session's result is written (its notice lost to B) before B may listen again: once it
    does, its follower reads again and ends with the result."""
    writer = await PostgresPlatformStore.open(postgres_dsn)  # no replica's: never swept
    database = sql.Identifier(conninfo_to_dict(postgres_dsn)["dbname"])
    try:
        record = SessionRecord(id="s-deaf", question=QUESTION, created_at=time.time())
        await writer.create_session(record.model_copy(update={"status": "running"}))
        await writer.add_session_event("s-deaf", 1, "turn_started", {"turn": 1})
        async with (
            replica(postgres_dsn) as (b, b_services),
            await psycopg.AsyncConnection.connect(
                make_conninfo(postgres_dsn, dbname="postgres"), autocommit=True
            ) as admin,
        ):
            router = router_of(b_services)
            on_b = Follower(address_of(b), "s-deaf")
            async with asyncio.timeout(40):
                await on_b.joined.wait()
            await admin.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(database)
            )
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (APPLICATION_PREFIX + router.replica_id,),
            )
            async with asyncio.timeout(40):
                await router.deaf.wait()
            ended = record.model_copy(update={"status": "completed", "final_answer": FINAL})
            await writer.update_session("s-deaf", status="completed", final_answer=FINAL)
            await writer.add_session_event("s-deaf", 2, "result", ended.model_dump(mode="json"))
            waiting_while_deaf = not on_b.task.done()
            await admin.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(database)
            )
            async with asyncio.timeout(40):
                events = await on_b.task
    finally:
        await writer.close()

    assert waiting_while_deaf
    assert [(event.seq, event.type) for event in events] == [(1, "turn_started"), (2, "result")]
    assert events[-1].data["final_answer"] == FINAL


async def test_replica_follower_whose_store_read_fails_is_closed_as_an_error(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a clean close, which the client would take for the session's end."""
    writer = await PostgresPlatformStore.open(postgres_dsn)  # no replica's: never swept
    try:
        record = SessionRecord(id="s-broken", question=QUESTION, created_at=time.time())
        await writer.create_session(record.model_copy(update={"status": "running"}))
        await writer.add_session_event("s-broken", 1, "turn_started", {"turn": 1})
        async with replica(postgres_dsn) as (b, b_services):
            store = pg_store(b_services)
            on_b = Follower(address_of(b), "s-broken")
            async with asyncio.timeout(40):
                await on_b.joined.wait()

            async def unreadable(session_id: str, after: int | None = None) -> list:
                raise psycopg.OperationalError("the database went away")

            monkeypatch.setattr(store, "session_events", unreadable)
            await writer.add_session_event("s-broken", 2, "turn_started", {"turn": 2})
            with pytest.raises(AskError, match="closed the connection before the result"):
                async with asyncio.timeout(40):
                    await on_b.task
    finally:
        await writer.close()

    assert [event.seq for event in on_b.events] == [1]


async def test_replica_follower_gets_every_event_written_just_before_the_outcome(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session's last event and its outcome are stored right after the follower read its
    events: it still sends that event, then the result, in order."""
    writer = await PostgresPlatformStore.open(postgres_dsn)  # no replica's: never swept
    try:
        record = SessionRecord(id="s-late", question=QUESTION, created_at=time.time())
        await writer.create_session(record.model_copy(update={"status": "running"}))
        await writer.add_session_event("s-late", 1, "turn_started", {"turn": 1})
        async with replica(postgres_dsn) as (b, b_services):
            store = pg_store(b_services)
            read_events = store.session_events

            async def then_the_end(session_id: str, after: int | None = None) -> list:
                events = await read_events(session_id, after)
                if [event.seq for event in events] == [2]:
                    await writer.add_session_event(session_id, 3, "final_answer", {"text": FINAL})
                    await writer.update_session(session_id, status="completed", final_answer=FINAL)
                return events

            monkeypatch.setattr(store, "session_events", then_the_end)
            on_b = Follower(address_of(b), "s-late")
            async with asyncio.timeout(40):
                await on_b.joined.wait()
                await writer.add_session_event("s-late", 2, "turn_started", {"turn": 2})
                events = await on_b.task
            session = await store.get_session("s-late")
    finally:
        await writer.close()

    assert session is not None
    assert [(event.seq, event.type) for event in events] == [
        (1, "turn_started"),
        (2, "turn_started"),
        (3, "final_answer"),
        (4, "result"),
    ]
    assert events[-1].data == session.model_dump(mode="json")
