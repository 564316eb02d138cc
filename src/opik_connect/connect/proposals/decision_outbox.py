"""Decisions to the platform: each ProposalDecided is sent until the link confirms it, once.

The journal is the outbox: a decided record stays undelivered until `emit` returns, so a
decision made while the link was down, or by another process (the CLI), still goes out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from pydantic import BaseModel

from opik_connect.connect.proposals.journal import ProposalJournal
from opik_connect.connect.proposals.suite_reruns import SuiteReruns
from opik_connect.connect.sandbox.outbound_redaction import redact_decision

log = logging.getLogger(__name__)

Emit = Callable[[BaseModel], Awaitable[None]]
"""Sends an event to the platform; returns only once the link has confirmed delivery."""


class DecisionOutbox:
    """Delivers the journal's undelivered decisions, one sender at a time."""

    def __init__(
        self, journal: ProposalJournal, emit: Emit | None, reruns: SuiteReruns | None
    ) -> None:
        self.journal = journal
        self.emit = emit
        self.reruns = reruns
        self._lock = asyncio.Lock()

    async def deliver(self) -> int:
        """Sends every decided-but-undelivered ProposalDecided; marks each once confirmed."""
        if self.emit is None:
            return 0
        sent = 0
        async with self._lock:
            for record in await asyncio.to_thread(self.journal.undelivered):
                if self.reruns is not None:
                    record = await self.reruns.settle(record)
                event = record.decision_event()
                if event is None:
                    continue
                try:
                    await self.emit(redact_decision(event))
                except Exception:  # the link is down: the record stays in the outbox
                    log.info("ProposalDecided %s not delivered yet", record.id, exc_info=True)
                    return sent
                await asyncio.to_thread(self.journal.mark_delivered, record.id)
                sent += 1
        return sent
