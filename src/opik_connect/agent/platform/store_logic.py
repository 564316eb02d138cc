"""The platform store's behaviour, written once over a backend's transactions (store_sql.py)."""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager
from typing import Any

from pydantic import BaseModel

from opik_connect.agent.platform import store_sql as sql
from opik_connect.agent.platform.store_fixes import (
    insert_suite_result,
    refresh_fix_after,
    upsert_fix,
)
from opik_connect.agent.platform.store_records import (
    SESSION_COLUMNS,
    DecisionRecord,
    FixOutcomeRecord,
    RecordedDecision,
    SentProposalRecord,
    SessionEventRecord,
    SessionRecord,
    SuiteResultRecord,
    decision_from_row,
    dumps_json,
    fix_from_row,
    proposal_from_row,
    session_from_row,
    session_values,
    suite_result_from_row,
)
from opik_connect.agent.platform.store_sql import StoreTx
from opik_connect.link.auth import PairingRecord
from opik_connect.protocol import (
    ProposalDecided,
    ProposeChangeArgs,
    ProposeChangeResult,
    SuiteResult,
    SuiteRunSummary,
)


class SqlPlatformStore(ABC):
    """Implements the PlatformStore protocol; a backend supplies `_transaction` and `close`."""

    @abstractmethod
    def _transaction(self, write: bool = True) -> AbstractAsyncContextManager[StoreTx]:
        """A connection for one unit of work: a transaction when `write`, else a plain read."""

    @abstractmethod
    async def close(self) -> None: ...

    async def _execute(self, statement: str, params: tuple[Any, ...] = ()) -> int:
        async with self._transaction() as tx:
            return await tx.execute(statement, params)

    async def _fetch(self, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        async with self._transaction(write=False) as tx:
            return await tx.fetchall(statement, params)

    def _session_row(self, record: SessionRecord) -> dict[str, Any]:
        """A new session's column values; a backend may add its own columns."""
        return session_values(record.model_dump())

    async def create_session(self, record: SessionRecord) -> None:
        values = self._session_row(record)
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        await self._execute(
            sql.INSERT_SESSION.format(columns=columns, marks=marks), tuple(values.values())
        )

    async def update_session(self, session_id: str, **fields: Any) -> None:
        await self._execute(*_session_update(session_id, fields))

    async def get_session(self, session_id: str) -> SessionRecord | None:
        rows = await self._fetch(sql.GET_SESSION, (session_id,))
        return session_from_row(rows[0]) if rows else None

    async def list_sessions(self, limit: int = 100) -> list[SessionRecord]:
        return [session_from_row(row) for row in await self._fetch(sql.LIST_SESSIONS, (limit,))]

    async def add_session_event(
        self, session_id: str, seq: int, type_: str, data: dict[str, Any]
    ) -> None:
        async with self._transaction() as tx:
            params = (session_id, seq, type_, dumps_json(data), time.time())
            await tx.execute(sql.UPSERT_SESSION_EVENT, params)
            await self._session_event_added(tx, session_id, seq)

    async def end_session(
        self, session_id: str, fields: dict[str, Any], seq: int, type_: str, data: dict[str, Any]
    ) -> None:
        update = _session_update(session_id, fields)
        async with self._transaction() as tx:
            await tx.execute(*update)
            params = (session_id, seq, type_, dumps_json(data), time.time())
            await tx.execute(sql.UPSERT_SESSION_EVENT, params)
            await self._session_event_added(tx, session_id, seq)

    @abstractmethod
    async def _session_event_added(self, tx: StoreTx, session_id: str, seq: int) -> None:
        """In the transaction that stored the event: announce it to whoever follows the
        session from elsewhere (PostgreSQL: replicas), if anyone can."""

    async def session_events(
        self, session_id: str, after: int | None = None
    ) -> list[SessionEventRecord]:
        if after is None:
            rows = await self._fetch(sql.LIST_SESSION_EVENTS, (session_id,))
        else:
            rows = await self._fetch(sql.LIST_SESSION_EVENTS_AFTER, (session_id, after))
        return [
            SessionEventRecord(
                session_id=row["session_id"],
                seq=row["seq"],
                type=row["type"],
                data=json.loads(row["data"]),
                at=row["at"],
            )
            for row in rows
        ]

    async def record_proposal(
        self,
        runner_id: str,
        args: ProposeChangeArgs,
        result: ProposeChangeResult,
        session_id: str | None = None,
    ) -> None:
        await self._execute(
            sql.INSERT_PROPOSAL,
            (
                result.proposal_id,
                session_id,
                runner_id,
                args.title,
                args.reason,
                args.trace_id,
                args.suite,
                dumps_json(args.test_case_ids),
                result.diff,
                dumps_json([stat.model_dump() for stat in result.files]),
                time.time(),
            ),
        )

    async def list_proposals(self, session_id: str | None = None) -> list[SentProposalRecord]:
        if session_id is None:
            rows = await self._fetch(sql.LIST_PROPOSALS)
        else:
            rows = await self._fetch(sql.LIST_SESSION_PROPOSALS, (session_id,))
        return [proposal_from_row(row) for row in rows]

    async def record_decision(self, runner_id: str, decided: ProposalDecided) -> RecordedDecision:
        """Take a decision once per proposal id: a later copy changes nothing and gets the first.

        The first copy also records the suite runs it carries and, when approved, the fix.
        """
        now = time.time()
        async with self._transaction() as tx:
            params = (decided.proposal_id, runner_id, decided.decision)
            taken = await tx.execute(sql.INSERT_DECISION, (*params, decided.model_dump_json(), now))
            if taken:
                for run in decided.suite_results:
                    await insert_suite_result(tx, runner_id, run, decided.proposal_id, None)
                if decided.decision == "approved":
                    await upsert_fix(tx, runner_id, decided, now)
            rows = await tx.fetchall(sql.GET_DECISION, (decided.proposal_id,))
        return RecordedDecision(record=decision_from_row(rows[0]), first=bool(taken))

    async def get_decision(self, proposal_id: str) -> DecisionRecord | None:
        rows = await self._fetch(sql.GET_DECISION, (proposal_id,))
        return decision_from_row(rows[0]) if rows else None

    async def list_decisions(self) -> list[DecisionRecord]:
        return [decision_from_row(row) for row in await self._fetch(sql.LIST_DECISIONS)]

    async def record_suite_result(
        self,
        runner_id: str,
        run: SuiteRunSummary,
        proposal_id: str | None = None,
        session_id: str | None = None,
    ) -> None:
        """Keep one row per run id; a later copy only fills in a missing proposal or session."""
        async with self._transaction() as tx:
            await insert_suite_result(tx, runner_id, run, proposal_id, session_id)
            if proposal_id is not None:
                await refresh_fix_after(tx, proposal_id, run)

    async def list_suite_results(
        self, suite: str | None = None, proposal_id: str | None = None
    ) -> list[SuiteResultRecord]:
        clauses, params = [], []
        if suite is not None:
            clauses.append("suite = ?")
            params.append(suite)
        if proposal_id is not None:
            clauses.append("proposal_id = ?")
            params.append(proposal_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._fetch(sql.LIST_SUITE_RESULTS.format(where=where), tuple(params))
        return [suite_result_from_row(row) for row in rows]

    async def get_fix(self, proposal_id: str) -> FixOutcomeRecord | None:
        rows = await self._fetch(sql.GET_FIX, (proposal_id,))
        return fix_from_row(rows[0]) if rows else None

    async def list_fixes(self) -> list[FixOutcomeRecord]:
        return [fix_from_row(row) for row in await self._fetch(sql.LIST_FIXES)]

    async def record_event(self, runner_id: str, event: BaseModel) -> None:
        """Record a daemon event the store cares about; others (heartbeats, file changes) pass."""
        if isinstance(event, ProposalDecided):
            await self.record_decision(runner_id, event)
        elif isinstance(event, SuiteResult):
            await self.record_suite_result(runner_id, event.run, event.proposal_id)

    async def put_pairing(self, record: PairingRecord) -> None:
        await self._execute(
            sql.UPSERT_PAIRING, (record.runner_id, record.model_dump_json(), time.time())
        )

    async def get_pairing(self, runner_id: str) -> PairingRecord | None:
        rows = await self._fetch(sql.GET_PAIRING, (runner_id,))
        return PairingRecord.model_validate_json(rows[0]["data"]) if rows else None

    async def list_pairings(self) -> dict[str, PairingRecord]:
        rows = await self._fetch(sql.LIST_PAIRINGS)
        return {row["runner_id"]: PairingRecord.model_validate_json(row["data"]) for row in rows}

    async def remove_pairing(self, runner_id: str) -> None:
        await self._execute(sql.DELETE_PAIRING, (runner_id,))


def _session_update(session_id: str, fields: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    unknown = set(fields) - set(SESSION_COLUMNS) | ({"id"} & set(fields))
    if unknown:
        raise ValueError(f"cannot update session fields {sorted(unknown)}")
    values = session_values(fields)
    assignments = ", ".join(f"{column} = ?" for column in values)
    return sql.UPDATE_SESSION.format(assignments=assignments), (*values.values(), session_id)
