"""The suite rerun a fix owes before its decision goes out: before -> after for Ollie."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from opik_connect.connect.fixes.branches import FixSummary
from opik_connect.connect.proposals.journal import JournaledProposal, ProposalJournal
from opik_connect.protocol import SuiteRunSummary

log = logging.getLogger(__name__)

AfterCommit = Callable[[FixSummary], Awaitable[list[SuiteRunSummary]]]
"""Runs the proposal's suite on the fix worktree (provided by the suites module)."""


class SuiteReruns:
    """Runs each applied fix's suites once and journals the results with the proposal."""

    def __init__(self, journal: ProposalJournal, after_commit: AfterCommit) -> None:
        self.journal = journal
        self.after_commit = after_commit

    async def settle(self, record: JournaledProposal) -> JournaledProposal:
        """The record with its rerun done; a rerun that breaks is recorded, never raised:
        the suite must never block the decision reaching Ollie."""
        if record.status != "applied" or record.suites_done:
            return record
        try:
            results = await self.after_commit(FixSummary.from_proposal(record))
        except Exception as exc:
            log.exception("suite rerun for proposal %s failed", record.id)
            return await self._record(record.id, reason=f"suite rerun failed: {exc}")
        return await self._record(record.id, suite_results=[*record.suite_results, *results])

    async def _record(self, proposal_id: str, **fields: object) -> JournaledProposal:
        def change(rec: JournaledProposal) -> None:
            rec.suites_done = True
            for key, value in fields.items():
                setattr(rec, key, value)

        return await asyncio.to_thread(self.journal.update, proposal_id, change)
