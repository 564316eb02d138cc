"""The platform store gives back exactly what it was told, once, across reopening.

The platform store must give back exactly what it was told, survive reopening, and link a
decision to its suite runs and fix without double-counting the copies that arrive twice.
"""

from __future__ import annotations

import asyncio
import sqlite3
import stat
from pathlib import Path

import pytest
from platform_api_testkit import approved, suite_run

from opik_connect.agent.platform.store import PlatformStore, open_platform_store
from opik_connect.agent.platform.store_records import SessionRecord
from opik_connect.agent.platform.store_schema import SCHEMA_VERSION, StoreError, default_store_path
from opik_connect.agent.platform.store_sqlite import SqlitePlatformStore
from opik_connect.link.auth import PairingRecord
from opik_connect.protocol import (
    FileEdit,
    FilesChanged,
    FileStat,
    ProposalDecided,
    ProposeChangeArgs,
    ProposeChangeResult,
    SuiteResult,
)


def proposal(proposal_id: str = "p1") -> tuple[ProposeChangeArgs, ProposeChangeResult]:
    args = ProposeChangeArgs(
        title="Round refunds",
        reason="the tool adds cents twice",
        trace_id="t1",
        suite="refunds",
        test_case_ids=["c1"],
        edits=[FileEdit(path="a.py", old_string="x", new_string="y")],
    )
    result = ProposeChangeResult(
        proposal_id=proposal_id,
        diff="--- a/a.py\n+++ b/a.py\n",
        files=[FileStat(path="a.py", added=1, removed=1)],
    )
    return args, result


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a store lives: a SQLite file, or a fresh database on the kit's real PostgreSQL."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_dsn")
    return tmp_path / "state" / "platform.sqlite3"


@pytest.fixture
async def store(location: str | Path):
    opened = await open_platform_store(location)
    yield opened
    await opened.close()


async def test_store_file_is_private_and_versioned(tmp_path: Path) -> None:
    store = await SqlitePlatformStore.open(tmp_path / "state" / "platform.sqlite3")
    await store.close()
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_default_path_is_under_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path))
    assert default_store_path() == tmp_path / "platform.sqlite3"


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        await open_platform_store(path)


async def test_session_round_trip_and_update_survive_reopen(location: str | Path) -> None:
    store = await open_platform_store(location)
    record = SessionRecord(
        id="s1",
        runner_id="r1",
        runner_name="laptop",
        question="why did refund fail?",
        trace_id="t1",
        suite="refunds",
        case_ids=["c1", "c2"],
        status="running",
        created_at=1.0,
        started_at=1.5,
    )
    await store.create_session(record)
    await store.add_session_event("s1", 1, "tool_call", {"name": "read_file"})
    await store.update_session(
        "s1",
        status="completed",
        final_answer="fixed",
        finished_at=9.0,
        usage={"input_tokens": 10},
        transcript_path="/tmp/s1.jsonl",
    )
    await store.close()

    store = await open_platform_store(location)
    got = await store.get_session("s1")
    assert got is not None
    assert got.model_dump() == {
        **record.model_dump(),
        "status": "completed",
        "final_answer": "fixed",
        "finished_at": 9.0,
        "usage": {"input_tokens": 10},
        "transcript_path": "/tmp/s1.jsonl",
    }
    events = await store.session_events("s1")
    assert [(e.seq, e.type, e.data) for e in events] == [(1, "tool_call", {"name": "read_file"})]
    assert [s.id for s in await store.list_sessions()] == ["s1"]
    assert await store.get_session("nope") is None
    await store.close()


async def test_update_refuses_unknown_or_id_fields(store: PlatformStore) -> None:
    with pytest.raises(ValueError, match="bogus"):
        await store.update_session("s1", bogus=1)
    with pytest.raises(ValueError, match="id"):
        await store.update_session("s1", id="s2")
    with pytest.raises(ValueError, match="bogus"):
        await store.end_session("s1", {"bogus": 1}, 1, "result", {})


async def test_a_sessions_end_and_its_last_event_are_stored_together(store: PlatformStore) -> None:
    await store.create_session(SessionRecord(id="s1", question="q", created_at=1.0))
    await store.add_session_event("s1", 1, "accepted", {})
    await store.end_session("s1", {"status": "failed", "error": "x"}, 2, "result", {"n": 2})
    ended = await store.get_session("s1")
    assert ended is not None and (ended.status, ended.error) == ("failed", "x")
    events = await store.session_events("s1")
    assert [(e.seq, e.type, e.data) for e in events] == [
        (1, "accepted", {}),
        (2, "result", {"n": 2}),
    ]
    with pytest.raises(ValueError):
        await store.end_session("s1", {"status": "completed", "id": "s9"}, 3, "result", {})
    again = await store.get_session("s1")
    assert again is not None and again.status == "failed", "a refused end changes nothing"
    assert len(await store.session_events("s1")) == 2


async def test_approved_decision_records_suite_runs_and_fix_once(store: PlatformStore) -> None:
    args, result = proposal()
    await store.record_suite_result("r1", suite_run("before", "failed"), session_id="s1")
    await store.record_proposal("r1", args, result, session_id="s1")
    after = suite_run("after", "passed", tree="opik/fix/p1-round")
    decided = approved("opik/fix/p1-round", "abc123", after)
    # The daemon's event and Ollie's wait both deliver the decision and its suite run.
    await store.record_event("r1", SuiteResult(run=after, proposal_id="p1"))
    await store.record_event("r1", decided)
    again = await store.record_decision("r1", decided)
    assert not again.first and again.record.decision == decided

    proposals = await store.list_proposals(session_id="s1")
    assert [(p.proposal_id, p.title, p.test_case_ids) for p in proposals] == [
        ("p1", "Round refunds", ["c1"])
    ]
    assert proposals[0].files == [{"path": "a.py", "added": 1, "removed": 1, "change": "modified"}]
    decisions = await store.list_decisions()
    assert [d.decision for d in decisions] == [decided]
    runs = await store.list_suite_results(suite="refunds")
    assert [(r.run.run_id, r.run.status, r.proposal_id, r.session_id) for r in runs] == [
        ("before", "failed", None, "s1"),
        ("after", "passed", "p1", None),
    ]
    assert [r.run.run_id for r in await store.list_suite_results(proposal_id="p1")] == ["after"]
    fix = await store.get_fix("p1")
    assert fix is not None
    assert (fix.branch, fix.commit, fix.suite) == ("opik/fix/p1-round", "abc123", "refunds")
    assert (fix.before_run_id, fix.before_status) == ("before", "failed")
    assert (fix.after_run_id, fix.after_status) == ("after", "passed")
    assert len(await store.list_fixes()) == 1


async def test_suite_run_arriving_after_approval_becomes_the_fix_after(
    store: PlatformStore,
) -> None:
    args, result = proposal()
    await store.record_proposal("r1", args, result)
    await store.record_decision(
        "r1", ProposalDecided(proposal_id="p1", decision="approved", branch="b", commit="c")
    )
    fix = await store.get_fix("p1")
    assert fix is not None and fix.after_status is None and fix.before_status is None
    await store.record_event(
        "r1", SuiteResult(run=suite_run("late", "failed", tree="b"), proposal_id="p1")
    )
    fix = await store.get_fix("p1")
    assert fix is not None
    assert (fix.after_run_id, fix.after_status) == ("late", "failed")


async def test_rejected_decision_makes_no_fix_and_other_events_pass(store: PlatformStore) -> None:
    args, result = proposal()
    await store.record_proposal("r1", args, result)
    await store.record_event(
        "r1", ProposalDecided(proposal_id="p1", decision="rejected", reason="too broad")
    )
    await store.record_event("r1", FilesChanged(changes=[]))
    decision = await store.get_decision("p1")
    assert decision is not None
    assert (decision.decision.decision, decision.decision.reason) == ("rejected", "too broad")
    assert await store.list_fixes() == []
    assert await store.get_decision("p2") is None


async def test_decision_is_taken_once_and_a_later_copy_gets_the_first(
    store: PlatformStore,
) -> None:
    args, result = proposal()
    await store.record_proposal("r1", args, result)
    first = await store.record_decision(
        "r1", ProposalDecided(proposal_id="p1", decision="rejected", reason="no")
    )
    later = await store.record_decision(
        "r2", ProposalDecided(proposal_id="p1", decision="approved", branch="b", commit="c")
    )
    assert first.first and not later.first
    assert later.record == first.record
    assert (later.record.runner_id, later.record.decision.decision) == ("r1", "rejected")
    assert await store.list_fixes() == []
    assert len(await store.list_decisions()) == 1


async def test_concurrent_stores_take_a_decision_exactly_once(location: str | Path) -> None:
    """Several connections (replicas, or processes on one file) race to record one decision."""
    stores = [await open_platform_store(location) for _ in range(4)]
    try:
        args, result = proposal()
        await stores[0].record_proposal("r1", args, result)
        copies = [
            ProposalDecided(proposal_id="p1", decision="approved", branch=f"b{n}", commit="c")
            for n in range(len(stores))
        ]
        outcomes = await asyncio.gather(
            *(s.record_decision("r1", d) for s, d in zip(stores, copies, strict=True))
        )
        assert sum(outcome.first for outcome in outcomes) == 1
        winner = next(outcome.record for outcome in outcomes if outcome.first)
        assert all(outcome.record == winner for outcome in outcomes)
        fixes = await stores[1].list_fixes()
        assert [fix.branch for fix in fixes] == [winner.decision.branch]
    finally:
        for opened in stores:
            await opened.close()


async def test_pairings_round_trip_replace_and_remove(location: str | Path) -> None:
    store = await open_platform_store(location)
    record = PairingRecord(
        runner_id="r1", activation_key="k" * 43, session_id="s", runner_name="laptop"
    )
    await store.put_pairing(record)
    await store.put_pairing(record.model_copy(update={"runner_name": "desk"}))
    await store.put_pairing(PairingRecord(runner_id="r2", activation_key="j", session_id="t"))
    await store.close()

    store = await open_platform_store(location)
    try:
        got = await store.get_pairing("r1")
        assert got is not None and got.runner_name == "desk"
        assert list(await store.list_pairings()) == ["r1", "r2"]
        await store.remove_pairing("r1")
        assert await store.get_pairing("r1") is None
        assert list(await store.list_pairings()) == ["r2"]
    finally:
        await store.close()


async def test_sessions_list_newest_first_and_events_replace_by_seq(store: PlatformStore) -> None:
    for n in range(3):
        await store.create_session(SessionRecord(id=f"s{n}", question="q", created_at=1.0))
    await store.add_session_event("s1", 1, "a", {"n": 1})
    await store.add_session_event("s1", 1, "b", {"n": 2})
    await store.add_session_event("s1", 0, "c", {})
    assert [s.id for s in await store.list_sessions()] == ["s2", "s1", "s0"]
    assert [s.id for s in await store.list_sessions(limit=1)] == ["s2"]
    events = await store.session_events("s1")
    assert [(e.seq, e.type, e.data) for e in events] == [(0, "c", {}), (1, "b", {"n": 2})]


async def test_session_events_after_a_seq_are_the_later_ones_in_order(
    store: PlatformStore,
) -> None:
    await store.create_session(SessionRecord(id="s1", question="q", created_at=1.0))
    for seq in (3, 1, 2):
        await store.add_session_event("s1", seq, f"e{seq}", {})
    assert [e.seq for e in await store.session_events("s1", after=1)] == [2, 3]
    assert await store.session_events("s1", after=3) == []
