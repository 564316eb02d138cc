"""The platform's pairings: runners paired so far, and pairings waiting for an operator.

Waiting pairings are bounded per source address and in all, and the oldest give way: anyone who
can reach the platform can hold PairRequests open, but never so many that a real daemon (from
another address, or later from the same one) cannot get a code.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from opik_connect.link.auth import (
    PairingRecord,
    PairingStore,
    decode_activation_key,
    new_pairing_code,
    normalize_pairing_code,
)
from opik_connect.protocol import BridgeError, ErrorCode, PairingConfirmed, PairRequest


class SharedPairings(Protocol):
    """Pairings every replica reads (agent.platform.replica_pairings), instead of one file."""

    async def get(self, runner_id: str) -> PairingRecord | None: ...

    async def put(self, record: PairingRecord) -> None: ...


MAX_PENDING_PAIRINGS = 32
MAX_PENDING_PAIRINGS_PER_SOURCE = 4


@dataclass
class PendingPairing:
    code: str
    request: PairRequest
    source: str
    expires_at: float
    confirmed: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    """Resolves to the session id once confirmed; fails with limit_reached if evicted."""


class PairingDesk:
    """Paired runners (kept in the store, if any) and the pairings waiting for an operator."""

    def __init__(
        self,
        store: PairingStore | None,
        *,
        ttl_s: float,
        max_pending: int = MAX_PENDING_PAIRINGS,
        max_pending_per_source: int = MAX_PENDING_PAIRINGS_PER_SOURCE,
    ) -> None:
        self._store = store
        self.paired: dict[str, PairingRecord] = store.all() if store else {}
        self.ttl_s = ttl_s
        self._max_pending = max_pending
        self._max_per_source = max_pending_per_source
        self._pending: dict[str, PendingPairing] = {}
        """By code, oldest first."""
        self.shared: SharedPairings | None = None
        """Set by a replica router: pairings then live there, and any replica accepts a Hello."""
        self._saving: set[asyncio.Task[None]] = set()
        self.confirm_elsewhere: Callable[[str], Awaitable[PairingConfirmed | None]] | None = None
        """Set by a replica router: a code unknown here may be waiting on another replica."""

    @property
    def waiting(self) -> int:
        return len(self._pending)

    def pre_pair(
        self, runner_id: str, activation_key: str, *, runner_name: str = "", project: str = ""
    ) -> PairingRecord:
        decode_activation_key(activation_key)
        record = PairingRecord(
            runner_id=runner_id,
            activation_key=activation_key,
            session_id=secrets.token_urlsafe(16),
            runner_name=runner_name,
            project=project,
        )
        self._remember(record)
        return record

    async def lookup(self, runner_id: str) -> PairingRecord | None:
        """The runner's pairing; with shared pairings, as stored now (another replica may have
        paired it again since)."""
        if self.shared is None:
            return self.paired.get(runner_id)
        await self.settled()
        record = await self.shared.get(runner_id)
        if record is not None:
            self.paired[runner_id] = record
        return record

    async def settled(self) -> None:
        """Every pairing made here is in the shared pairings (before a daemon is told Paired)."""
        while self._saving:
            await asyncio.gather(*self._saving)

    def open(self, request: PairRequest, source: str, now: float) -> PendingPairing:
        """A new waiting pairing. At the per-source bound the source's oldest gives way; at the
        overall bound the oldest of the address holding most does, unless that is this one
        (then limit_reached)."""
        mine = [pending for pending in self._pending.values() if pending.source == source]
        if len(mine) >= self._max_per_source:
            self._evict(mine[0], "a newer pairing request from the same address replaced it")
        elif len(self._pending) >= self._max_pending:
            counts = Counter(pending.source for pending in self._pending.values())
            most = max(counts.values())
            if counts[source] >= most:
                raise BridgeError(ErrorCode.LIMIT_REACHED, "too many pairings waiting; retry later")
            victim = next(p for p in self._pending.values() if counts[p.source] == most)
            self._evict(victim, "too many pairings waiting from one address")
        code = new_pairing_code()
        while code in self._pending:
            code = new_pairing_code()
        pending = PendingPairing(code, request, source, now + self.ttl_s)
        self._pending[code] = pending
        return pending

    def close(self, pending: PendingPairing) -> None:
        """The pairing is over (confirmed, expired, evicted or its daemon left)."""
        if self._pending.get(pending.code) is pending:
            del self._pending[pending.code]

    def holds(self, code: str) -> bool:
        return normalize_pairing_code(code) in self._pending

    async def confirm_anywhere(self, code: str, now: float) -> PairingConfirmed:
        """confirm(), or (replicas) on the replica where the daemon waits with this code."""
        if self.holds(code) or self.confirm_elsewhere is None:
            return self.confirm(code, now)
        confirmed = await self.confirm_elsewhere(code)
        if confirmed is None:
            raise BridgeError(ErrorCode.NOT_PAIRED, "no pairing request with that code")
        return confirmed

    def confirm(self, code: str, now: float) -> PairingConfirmed:
        """The operator confirms the code the daemon showed; unknown or expired -> not_paired."""
        pending = self._pending.get(normalize_pairing_code(code))
        if pending is None:
            raise BridgeError(ErrorCode.NOT_PAIRED, "no pairing request with that code")
        self.close(pending)
        if now > pending.expires_at:
            raise BridgeError(ErrorCode.NOT_PAIRED, "pairing code expired")
        request = pending.request
        record = self.pre_pair(
            request.runner_id,
            request.activation_key,
            runner_name=request.runner_name,
            project=request.project,
        )
        if not pending.confirmed.done():
            pending.confirmed.set_result(record.session_id)
        return PairingConfirmed(
            runner_id=request.runner_id, runner_name=request.runner_name, project=request.project
        )

    def _evict(self, pending: PendingPairing, why: str) -> None:
        self.close(pending)
        if not pending.confirmed.done():
            pending.confirmed.set_exception(BridgeError(ErrorCode.LIMIT_REACHED, why))

    def _remember(self, record: PairingRecord) -> None:
        self.paired[record.runner_id] = record
        if self._store is not None:
            self._store.put(record.runner_id, record)
        if self.shared is not None:
            task = asyncio.ensure_future(self.shared.put(record))
            self._saving.add(task)
            task.add_done_callback(self._saving.discard)
