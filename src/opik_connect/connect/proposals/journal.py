"""The on-disk journal of proposals: the source of truth for the daemon and the CLI alike.

One JSON file per proposal under <project state>/proposals/, mode 0600, written atomically
(temp file, fsync, os.replace, fsync of the directory), so a crash never leaves half a record.
Read-modify-write goes through an exclusive fcntl.flock on proposals/.lock, so `opik-connect
approve` in another terminal and a running daemon never both claim one proposal.
The records double as the outbox of ProposalDecided events: a decided record stays
`delivered=False` until the link confirms the platform has it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import BaseModel, Field

from opik_connect.connect.proposals.state import DECIDED, FixStatus, ProposalStatus
from opik_connect.private_files import atomic_write_private
from opik_connect.protocol import (
    BridgeError,
    ErrorCode,
    FileStat,
    ProposalDecided,
    ProposeChangeArgs,
    SuiteRunSummary,
    Verification,
)


class JournaledProposal(BaseModel):
    """A proposal from arrival to decision, and the fix branch it became."""

    id: str
    created: float = Field(default_factory=time.time)
    args: ProposeChangeArgs
    diff: str
    files: list[FileStat]
    base_head: str | None
    hashes: dict[str, str | None] = Field(description="sha256 of each touched file at proposal.")
    status: ProposalStatus = Field("pending", description="Changed only by state.move.")
    reason: str | None = Field(None, description="Why it was rejected, went stale or failed.")
    decided_at: float | None = None
    decided_by: str | None = None
    branch: str | None = None
    commit: str | None = None
    worktree: str | None = None
    fix_status: FixStatus | None = None
    branch_deleted: bool = Field(False, description="`fixes drop` removed the fix branch.")
    suite_results: list[SuiteRunSummary] = Field(default_factory=list)
    suites_done: bool = False
    delivered: bool = False
    command_id: str | None = Field(None, description="The ProposeChange command that made it.")
    verification: Verification | None = Field(None, description="The check before it was shown.")

    def decision_event(self) -> ProposalDecided | None:
        """The event the platform is owed for this record, or None while undecided."""
        if self.status in ("rejected", "stale"):
            return ProposalDecided(proposal_id=self.id, decision=self.status, reason=self.reason)
        if self.status in ("applied", "failed"):
            return ProposalDecided(
                proposal_id=self.id,
                decision="approved",
                reason=self.reason,
                branch=self.branch,
                commit=self.commit,
                suite_results=self.suite_results,
            )
        return None


class ProposalJournal:
    """Proposal records on disk; every mutation happens under the journal lock."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "proposals"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_path = self.dir / ".lock"
        self._depth = 0
        self._lock_fd: int | None = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across processes; re-entrant within this object."""
        if self._depth == 0:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd = fd
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None

    @contextlib.contextmanager
    def apply_lock(self, proposal_id: str) -> Iterator[bool]:
        """Held while one process builds a proposal's fix; yields False if another holds it.

        Never blocks (safe on the event loop); the kernel drops it when its holder dies, so a
        free lock on an `applying` record means the apply was interrupted.
        """
        self._path(proposal_id)
        fd = os.open(self.dir / f".apply-{proposal_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def new_id(self) -> str:
        while True:
            candidate = secrets.token_hex(4)
            if not (self.dir / f"{candidate}.json").exists():
                return candidate

    def _path(self, proposal_id: str) -> Path:
        if not proposal_id or not proposal_id.isalnum():
            raise BridgeError(ErrorCode.PROPOSAL_NOT_FOUND, f"no proposal {proposal_id!r}")
        return self.dir / f"{proposal_id}.json"

    @staticmethod
    def encoded(record: JournaledProposal) -> bytes:
        """The record as the journal stores it (its size is what the pending cap counts)."""
        return record.model_dump_json(indent=1).encode()

    def save(self, record: JournaledProposal) -> None:
        with self.locked():
            atomic_write_private(self._path(record.id), self.encoded(record))

    def by_command(self, command_id: str) -> JournaledProposal | None:
        """The proposal a ProposeChange command made, if it was handled before."""
        return next((r for r in self.all() if r.command_id == command_id), None)

    def save_new(
        self, record: JournaledProposal, admit: Callable[[JournaledProposal], None]
    ) -> JournaledProposal:
        """Save a new proposal unless its command already made one; returns the one kept.

        `admit` runs under the lock, so concurrent arrivals cannot all pass a limit it checks;
        it raises to refuse the record."""
        with self.locked():
            earlier = self.by_command(record.command_id) if record.command_id else None
            if earlier is not None:
                return earlier
            admit(record)
            self.save(record)
            return record

    def get(self, proposal_id: str) -> JournaledProposal:
        """A record by id or by a unique prefix of it (what a user types)."""
        path = self._path(proposal_id)
        if not path.exists():
            matches = [p for p in self.dir.glob(f"{proposal_id}*.json")]
            if len(matches) != 1:
                raise BridgeError(
                    ErrorCode.PROPOSAL_NOT_FOUND,
                    f"no proposal {proposal_id!r}" + (" (ambiguous prefix)" if matches else ""),
                    proposal_id=proposal_id,
                )
            path = matches[0]
        return JournaledProposal.model_validate_json(path.read_bytes())

    def all(self) -> list[JournaledProposal]:
        """Every record, oldest first."""
        records = [
            JournaledProposal.model_validate_json(p.read_bytes()) for p in self.dir.glob("*.json")
        ]
        return sorted(records, key=lambda r: (r.created, r.id))

    def pending(self) -> list[JournaledProposal]:
        return [r for r in self.all() if r.status == "pending"]

    def undelivered(self) -> list[JournaledProposal]:
        """Decided records whose ProposalDecided the platform has not confirmed yet."""
        return [r for r in self.all() if r.status in DECIDED and not r.delivered]

    def update(
        self, proposal_id: str, change: Callable[[JournaledProposal], None]
    ) -> JournaledProposal:
        """Load, change and save one record under the lock; `change` may raise to refuse."""
        with self.locked():
            record = self.get(proposal_id)
            change(record)
            self.save(record)
            return record

    def mark_delivered(self, proposal_id: str) -> None:
        def deliver(record: JournaledProposal) -> None:
            record.delivered = True

        self.update(proposal_id, deliver)
