"""Session bookkeeping: statuses, the runner chosen, and what Ollie's calls cause.

Session bookkeeping: whichever way a session ends it has a status in the store and a final
'result' event; the runner is chosen unambiguously; what Ollie's calls cause is recorded with the
session's id. The runner is the in-memory FakeRunner (the real one is in test_ask_with_ollie.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from ollie_fake_runner import FakeRunner, suite_run

from opik_connect.agent.ollie.sessions import (
    OllieSessions,
    RecordingRunner,
    SessionContext,
    SessionOutcome,
    resolve_runner,
)
from opik_connect.agent.platform.store import PlatformStore, open_platform_store
from opik_connect.agent.platform.store_records import SessionRecord
from opik_connect.protocol import (
    AskRequest,
    BridgeError,
    ErrorCode,
    FileEdit,
    ProposalDecided,
    ProposeChangeArgs,
    RunSuiteArgs,
)

pytestmark = pytest.mark.timeout(20)
KEY = {"ANTHROPIC_API_KEY": "k"}


@dataclass
class Info:
    runner_id: str
    name: str
    connected: bool = True


class Directory:
    def __init__(self, *runners: tuple[Info, object]) -> None:
        self._runners = dict((info.runner_id, (info, runner)) for info, runner in runners)

    def runners(self) -> list[Info]:
        return [info for info, _ in self._runners.values()]

    def runner(self, runner_id: str) -> object:
        return self._runners[runner_id][1]


@pytest.fixture
async def store(tmp_path: Path):
    opened = await open_platform_store(tmp_path / "p.sqlite3")
    yield opened
    await opened.close()


def one_runner() -> Directory:
    return Directory((Info("runner-test", "fake"), FakeRunner({})))


async def ended(sessions: OllieSessions, driver_request: AskRequest) -> tuple[SessionRecord, list]:
    live = await sessions.ask(driver_request)
    events = [event async for event in live.stream()]
    return live.record, events


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (RuntimeError("boom"), "failed", "RuntimeError: boom"),
        (BridgeError(ErrorCode.TIMEOUT, "no result"), "failed", "timeout: no result"),
    ],
)
async def test_a_failing_driver_still_ends_the_session(
    store: PlatformStore, error: Exception, status: str, message: str
) -> None:
    async def driver(context: SessionContext) -> SessionOutcome:
        raise error

    sessions = OllieSessions(one_runner(), store, driver, env=KEY)
    record, events = await ended(sessions, AskRequest(question="q"))
    assert [e.type for e in events] == ["accepted", "result"]
    assert (events[-1].data["status"], events[-1].data["error"]) == (status, message)
    stored = await store.get_session(record.id)
    assert stored is not None
    assert (stored.status, stored.error) == (status, message)
    assert stored.finished_at is not None


async def test_closing_cancels_running_sessions_and_records_it(store: PlatformStore) -> None:
    started = asyncio.Event()

    async def driver(context: SessionContext) -> SessionOutcome:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    sessions = OllieSessions(one_runner(), store, driver, env=KEY)
    live = await sessions.ask(AskRequest(question="q"))
    await started.wait()
    await sessions.aclose()
    events = [event async for event in live.stream()]
    assert (events[-1].type, events[-1].data["status"]) == ("result", "cancelled")
    stored = await store.get_session(live.id)
    assert stored is not None and stored.status == "cancelled"


class HeldResultStore:
    """The store, but writing a session's result waits until released."""

    def __init__(self, inner: PlatformStore) -> None:
        self._inner = inner
        self.writing = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def end_session(
        self, session_id: str, fields: dict, seq: int, type_: str, data: dict
    ) -> None:
        self.writing.set()
        await self.release.wait()
        await self._inner.end_session(session_id, fields, seq, type_, data)


async def test_closing_lets_a_session_storing_its_end_finish(store: PlatformStore) -> None:
    """A session whose end is being stored is not cancelled: its listeners then get the result
    and a later read of the store sees it too."""
    held = HeldResultStore(store)

    async def driver(context: SessionContext) -> SessionOutcome:
        return SessionOutcome(status="completed", final_answer="done")

    sessions = OllieSessions(one_runner(), held, driver, env=KEY)  # type: ignore[arg-type]
    live = await sessions.ask(AskRequest(question="q"))
    await held.writing.wait()
    closing = asyncio.create_task(sessions.aclose())
    await asyncio.sleep(0)  # one turn of the loop: aclose has decided what to cancel
    assert live.task is not None and not live.task.cancelling()
    assert not live.finished, "listeners get the result once it is stored"
    held.release.set()
    await closing
    stored = await store.session_events(live.id)
    assert [event.type for event in stored] == ["accepted", "result"]
    assert [event.type for event in live.events] == ["accepted", "result"]


async def test_the_runner_is_chosen_unambiguously(store: PlatformStore) -> None:
    a, b = FakeRunner({}), FakeRunner({})
    two = Directory((Info("id-a", "laptop"), a), (Info("id-b", "ci"), b))
    assert resolve_runner(two, "id-b") is b
    assert resolve_runner(two, "laptop") is a
    with pytest.raises(BridgeError, match="several runners") as several:
        resolve_runner(two, None)
    assert several.value.code == ErrorCode.RUNNER_NOT_FOUND
    with pytest.raises(BridgeError, match="not a connected runner"):
        resolve_runner(two, "desktop")
    same_name = Directory((Info("id-a", "box"), a), (Info("id-b", "box"), b))
    with pytest.raises(BridgeError, match="matches several"):
        resolve_runner(same_name, "box")
    offline = Directory((Info("id-a", "laptop", connected=False), a))
    with pytest.raises(BridgeError, match="no runner is connected"):
        resolve_runner(offline, None)

    async def driver(context: SessionContext) -> SessionOutcome:
        return SessionOutcome(status="completed")

    sessions = OllieSessions(offline, store, driver, env=KEY)
    with pytest.raises(BridgeError) as refused:
        await sessions.ask(AskRequest(question="q"))
    assert refused.value.code == ErrorCode.RUNNER_NOT_FOUND
    assert await store.list_sessions() == []


async def test_recording_runner_links_what_ollie_caused_to_the_session(
    store: PlatformStore,
) -> None:
    decided = ProposalDecided(
        proposal_id="p1",
        decision="approved",
        branch="opik/fix/p1",
        commit="c1",
        suite_results=[suite_run("refunds", True, tree="opik/fix/p1", run_id="after")],
    )
    inner = FakeRunner(
        {},
        proposals=["p1"],
        decisions={"p1": decided},
        suite_runs=[suite_run("refunds", False, run_id="before")],
    )
    runner = RecordingRunner(inner, store, "s1")
    assert (runner.runner_id, runner.name, runner.project) == ("runner-test", "fake", "support-qa")
    await runner.run_suite(RunSuiteArgs(suite="refunds"))
    await runner.propose_change(
        ProposeChangeArgs(
            title="t",
            reason="r",
            suite="refunds",
            edits=[FileEdit(path="agent.py", old_string="a", new_string="b")],
        )
    )
    assert await runner.wait_decision("p1") == decided
    [proposal] = await store.list_proposals(session_id="s1")
    assert (proposal.proposal_id, proposal.runner_id) == ("p1", "runner-test")
    runs = await store.list_suite_results(suite="refunds")
    assert [(r.run.run_id, r.session_id, r.proposal_id) for r in runs] == [
        ("before", "s1", None),
        ("after", None, "p1"),
    ]
    fix = await store.get_fix("p1")
    assert fix is not None
    assert (fix.before_status, fix.after_status) == ("failed", "passed")
