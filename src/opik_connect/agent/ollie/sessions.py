"""Ollie sessions on the platform: a question in, a session on a runner, its progress out.

A request names a runner (or lets the only connected one answer); the session runs as a task, so
the asker may disconnect and others may follow it. Every event is kept in memory for late
listeners and written to the store with the session's outcome. Proposals, decisions and suite
runs Ollie causes are recorded by wrapping its runner, so they carry the session's id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from opik_connect.agent.ollie.events import SessionEvent, to_ask_event
from opik_connect.agent.ollie.events import SessionStatus as OllieStatus
from opik_connect.agent.ollie.loop import Ollie
from opik_connect.agent.ollie.session_request import ASKED_FIELDS, OllieLimits, OllieRequest
from opik_connect.agent.platform.activity import Activity, SessionChange
from opik_connect.agent.platform.log_context import SESSION_ID
from opik_connect.agent.platform.runner_api import Runner
from opik_connect.agent.platform.store import PlatformStore
from opik_connect.agent.platform.store_records import SessionRecord
from opik_connect.agent.traces.store import TraceNotFound, TraceStore, TraceStoreError
from opik_connect.config import ProjectConfig
from opik_connect.protocol import (
    AskEvent,
    AskRequest,
    BridgeError,
    ErrorCode,
    ProposalDecided,
    ProposeChangeArgs,
    ProposeChangeResult,
    RunSuiteArgs,
    SuiteRunSummary,
)

log = logging.getLogger(__name__)

API_KEY_ENV = "ANTHROPIC_API_KEY"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
LAST_RUNS = 5
NO_API_KEY_MESSAGE = (
    "Ollie needs an Anthropic API key and none is set, so no question was sent.\n"
    "Set it in the environment of the process that runs the platform (the `opik-connect` "
    "daemon for the embedded one), then restart it:\n"
    "    export ANTHROPIC_API_KEY=sk-ant-...\n"
    "For an Anthropic-compatible server, also set ANTHROPIC_BASE_URL."
)
RECENT_SESSIONS = 64
"""Finished sessions kept in memory so a listener that comes late still gets the whole stream."""

TERMINAL_TYPES = frozenset({"result", "error"})


class RunnerDirectory(Protocol):
    """What sessions need from the platform's registry (agent.platform.server.Platform)."""

    def runners(self) -> list[Any]: ...

    def runner(self, runner_id: str) -> Any: ...


@dataclass
class SessionOutcome:
    """How a driver says a session ended; status is stored as given (e.g. 'max_turns')."""

    status: str
    final_answer: str | None = None
    error: str | None = None
    usage: dict[str, Any] | None = None
    transcript_path: str | None = None


Emit = Callable[[str, dict[str, Any]], Awaitable[None]]
"""emit(event type, JSON-able data): one step of progress, sent to every listener."""


@dataclass
class SessionContext:
    session_id: str
    request: AskRequest
    runner: Runner
    emit: Emit


SessionDriver = Callable[[SessionContext], Awaitable[SessionOutcome]]
"""Runs one session to its end: Ollie's loop (ollie_driver), or a stand-in in tests."""


class LiveSession:
    """One session's events in order; any number of listeners, each from the first event."""

    def __init__(self, record: SessionRecord) -> None:
        self.record = record
        self.events: list[AskEvent] = []
        self.finished = False
        self.ending = False
        """Its end is being stored (then published): closing lets that finish."""
        self._changed = asyncio.Condition()
        self.task: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        return self.record.id

    async def publish(self, type_: str, data: dict[str, Any]) -> AskEvent:
        async with self._changed:
            event = AskEvent(session_id=self.id, seq=len(self.events) + 1, type=type_, data=data)
            self.events.append(event)
            if type_ in TERMINAL_TYPES:
                self.finished = True
            self._changed.notify_all()
        return event

    async def stream(self) -> AsyncIterator[AskEvent]:
        """Every event so far, then each new one, ending after the terminal event."""
        index = 0
        while True:
            async with self._changed:
                await self._changed.wait_for(
                    lambda seen=index: seen < len(self.events) or self.finished
                )
                batch = self.events[index:]
                index = len(self.events)
                done = self.finished
            for event in batch:
                yield event
            if done and index >= len(self.events):
                return

    async def wait(self) -> SessionRecord:
        """The session's final record."""
        async for _event in self.stream():
            pass
        return self.record


class RecordingRunner:
    """The chosen runner as Ollie sees it, recording what Ollie's calls cause in the store.

    Reads pass straight to the inner runner; they cause nothing to record.
    """

    def __init__(self, inner: Runner, store: PlatformStore, session_id: str) -> None:
        self._inner = inner
        self._store = store
        self._session_id = session_id
        self.runner_id = inner.runner_id
        self.name = inner.name
        self.project = inner.project
        self.read_file = inner.read_file
        self.list_files = inner.list_files
        self.search_files = inner.search_files

    async def propose_change(self, args: ProposeChangeArgs) -> ProposeChangeResult:
        result = await self._inner.propose_change(args)
        await self._store.record_proposal(self.runner_id, args, result, self._session_id)
        return result

    async def wait_decision(self, proposal_id: str) -> ProposalDecided:
        decided = await self._inner.wait_decision(proposal_id)
        await self._store.record_decision(self.runner_id, decided)
        return decided

    async def run_suite(self, args: RunSuiteArgs) -> SuiteRunSummary:
        summary = await self._inner.run_suite(args)
        await self._store.record_suite_result(self.runner_id, summary, session_id=self._session_id)
        return summary


def check_api_key(env: Mapping[str, str]) -> None:
    """Refuse before a session exists: nothing may pretend to answer without a model."""
    if not env.get(API_KEY_ENV, "").strip():
        raise BridgeError(ErrorCode.NO_API_KEY, NO_API_KEY_MESSAGE, env=API_KEY_ENV)


def resolve_runner(directory: RunnerDirectory, wanted: str | None) -> Any:
    """By id or name; with none named, the only connected runner."""
    infos = [info for info in directory.runners() if info.connected]
    if wanted is not None:
        matches = [info for info in infos if wanted in (info.runner_id, info.name)]
        if len(matches) == 1:
            return directory.runner(matches[0].runner_id)
        known = ", ".join(info.name for info in infos) or "none"
        problem = "matches several runners" if matches else "is not a connected runner"
        raise BridgeError(ErrorCode.RUNNER_NOT_FOUND, f"{wanted!r} {problem} (connected: {known})")
    if len(infos) == 1:
        return directory.runner(infos[0].runner_id)
    if not infos:
        raise BridgeError(
            ErrorCode.RUNNER_NOT_FOUND,
            "no runner is connected: start `opik-connect` in the project first",
        )
    names = ", ".join(info.name for info in infos)
    raise BridgeError(
        ErrorCode.RUNNER_NOT_FOUND, f"several runners are connected ({names}); name one"
    )


class OllieSessions:
    """Starts sessions and keeps the live ones. Close with `await sessions.aclose()`."""

    def __init__(
        self,
        directory: RunnerDirectory,
        store: PlatformStore,
        driver: SessionDriver,
        *,
        env: Mapping[str, str] | None = None,
        activity: Activity | None = None,
    ) -> None:
        """`activity` (the platform's) counts running sessions, for draining and metrics."""
        self._directory = directory
        self._store = store
        self._driver = driver
        self._env = env if env is not None else os.environ
        self._activity = activity or Activity()
        self._live: OrderedDict[str, LiveSession] = OrderedDict()

    def live(self, session_id: str) -> LiveSession | None:
        return self._live.get(session_id)

    async def ask(self, request: AskRequest) -> LiveSession:
        """Start a session; raises BridgeError(no_api_key | runner_not_found) before one exists."""
        check_api_key(self._env)
        runner = resolve_runner(self._directory, request.runner)
        now = time.time()
        record = SessionRecord(
            id=uuid.uuid4().hex[:16],
            runner_id=runner.runner_id,
            runner_name=runner.name,
            **request.model_dump(include=ASKED_FIELDS),
            status="running",
            created_at=now,
            started_at=now,
        )
        await self._store.create_session(record)
        live = LiveSession(record)
        self._remember(live)
        await self._emit(live, "accepted", record.model_dump(mode="json"))
        context = SessionContext(
            session_id=record.id,
            request=request,
            runner=RecordingRunner(runner, self._store, record.id),
            emit=lambda type_, data: self._emit(live, type_, data),
        )
        self._activity.session_changed(SessionChange(record.id, record.runner_id, finished=False))
        live.task = asyncio.create_task(self._run(live, context), name=f"ollie-{record.id}")
        return live

    async def aclose(self) -> None:
        """Cancel running sessions; each is recorded as cancelled. One already storing its end
        is left to finish it, or a later read of the store would lack the end."""
        running = [(live, live.task) for live in self._live.values() if live.task]
        tasks = [task for _, task in running if not task.done()]
        for live, task in running:
            if not live.ending:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _remember(self, live: LiveSession) -> None:
        self._live[live.id] = live
        finished = [sid for sid, other in self._live.items() if other.finished]
        for sid in finished[: max(0, len(self._live) - RECENT_SESSIONS)]:
            del self._live[sid]

    async def _emit(self, live: LiveSession, type_: str, data: dict[str, Any]) -> None:
        event = await live.publish(type_, data)
        try:
            await self._store.add_session_event(live.id, event.seq, type_, data)
        except Exception:
            log.exception("could not record event %s of session %s", type_, live.id)

    async def _run(self, live: LiveSession, context: SessionContext) -> None:
        SESSION_ID.set(live.id)  # this task's own context: every log line it causes has the id
        log.info("session started", extra={"runner_id": live.record.runner_id})
        try:
            outcome = await self._driver(context)
        except asyncio.CancelledError:
            outcome = SessionOutcome(status="cancelled", error="the platform stopped")
            await self._finish(live, outcome)
            raise
        except BridgeError as exc:
            outcome = SessionOutcome(status="failed", error=f"{exc.code}: {exc.message}")
        except Exception as exc:
            log.exception("session %s failed", live.id)
            outcome = SessionOutcome(status="failed", error=f"{type(exc).__name__}: {exc}")
        await self._finish(live, outcome)

    async def _finish(self, live: LiveSession, outcome: SessionOutcome) -> None:
        fields: dict[str, Any] = {
            "status": outcome.status,
            "final_answer": outcome.final_answer,
            "error": outcome.error,
            "transcript_path": outcome.transcript_path,
            "usage": outcome.usage or {},
            "finished_at": time.time(),
        }
        live.record = live.record.model_copy(update=fields)
        live.ending = True
        result = live.record.model_dump(mode="json")
        try:
            await self._store.end_session(live.id, fields, len(live.events) + 1, "result", result)
        except Exception:
            log.exception("could not record the end of session %s", live.id)
        await live.publish("result", result)
        usage = dict(outcome.usage or {})
        cost = usage.pop("cost_usd_estimate", None)
        started = [event for event in live.events if event.type == "session_started"]
        change = SessionChange(
            live.id,
            live.record.runner_id,
            finished=True,
            status=outcome.status,
            model=started[0].data.get("model") if started else None,
            usage={key: value for key, value in usage.items() if key.endswith("_tokens")},
            cost_usd=cost,
        )
        log.info("session finished", extra={"status": outcome.status})
        self._activity.session_changed(change)


def ollie_driver(
    *,
    store: PlatformStore,
    traces: TraceStore,
    config: ProjectConfig | None = None,
    limits: OllieLimits | None = None,
    transcript_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> SessionDriver:
    """Sessions run by Ollie; the model from config, key and base URL from `env`."""
    env = env if env is not None else os.environ
    config = config or ProjectConfig()

    async def drive(context: SessionContext) -> SessionOutcome:
        trace_id = context.request.trace_id
        if trace_id:
            try:
                await traces.get(trace_id)
            except TraceNotFound as exc:
                # Before any model call: the user learns where traces are looked for.
                return SessionOutcome(status="trace_not_found", error=str(exc))
            except TraceStoreError:
                pass  # unreachable is not unknown: get_trace will report it to Ollie
        request = OllieRequest.from_ask(
            context.request, last_runs=await _last_user_runs(store, context.request.suite)
        )

        async def forward(event: SessionEvent) -> None:
            await context.emit(event.type, to_ask_event(event).data)

        async with Ollie.from_config(
            config,
            api_key=env.get(API_KEY_ENV),
            base_url=env.get(BASE_URL_ENV),
            limits=limits,
            transcript_dir=transcript_dir,
        ) as ollie:
            result = await ollie.run_session(
                request,
                runner=context.runner,
                traces=traces,
                on_event=forward,
                session_id=context.session_id,
            )
        completed = result.status == OllieStatus.COMPLETED
        return SessionOutcome(
            status=result.status.value,
            final_answer=result.final_answer,
            error=None if completed else result.detail,
            usage={
                **result.usage.model_dump(),
                "turns": result.turns,
                "cost_usd_estimate": result.cost_usd_estimate,
            },
            transcript_path=result.transcript_path,
        )

    return drive


async def _last_user_runs(store: PlatformStore, suite: str | None) -> list[SuiteRunSummary]:
    """The suite's latest runs on the user's tree: Ollie's test cases show their last result."""
    if suite is None:
        return []
    records = await store.list_suite_results(suite=suite)
    return [record.run for record in records if record.run.tree == "user"][-LAST_RUNS:]
