"""ProposalService: one project's proposals from arrival to decision, and the decision out.

It wires the jobs together: intake (planning, idempotency, the pending cap, staleness), the
user's decisions (here), the fix build and its crash recovery, the suite reruns and the outbox.
`submit` is the daemon's ProposeChange handler. Only local code (the terminal prompt,
`opik-connect approve`) calls `approve`; the platform has no command that reaches it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from opik_connect.config import load_project_config, project_state_dir
from opik_connect.connect.fixes.branches import FixBranches, FixSummary
from opik_connect.connect.proposals.decision_outbox import DecisionOutbox, Emit
from opik_connect.connect.proposals.edit_engine import ReadCurrent
from opik_connect.connect.proposals.fix_builder import FixBuilder
from opik_connect.connect.proposals.intake import ProposalIntake, proposed, sandbox_reader
from opik_connect.connect.proposals.journal import JournaledProposal, ProposalJournal
from opik_connect.connect.proposals.state import IN_FLIGHT, ProposalStatus, move
from opik_connect.connect.proposals.suite_reruns import AfterCommit, SuiteReruns
from opik_connect.connect.proposals.verification import ProposalVerifier, verify_arrival
from opik_connect.connect.sandbox.policy import PathPolicy
from opik_connect.protocol import (
    BridgeError,
    ErrorCode,
    FilesChanged,
    ProposeChangeArgs,
    ProposeChangeResult,
)

log = logging.getLogger(__name__)

Notify = Callable[[str], None]


class ProposalService:
    """One project's proposals; safe to use from the daemon and the CLI at the same time."""

    def __init__(
        self,
        root: Path,
        state_dir: Path | None = None,
        *,
        read: ReadCurrent,
        emit: Emit | None = None,
        after_commit: AfterCommit | None = None,
        notify: Notify | None = None,
    ) -> None:
        self.root = root.resolve()
        self.state_dir = state_dir or project_state_dir(self.root)
        self.journal = ProposalJournal(self.state_dir)
        self.fixes = FixBranches(self.root, self.state_dir)
        self.intake = ProposalIntake(self.root, self.journal, read)
        self.builder = FixBuilder(self.journal, self.fixes)
        reruns = SuiteReruns(self.journal, after_commit) if after_commit else None
        self.outbox = DecisionOutbox(self.journal, emit, reruns)
        self.notify = notify or (lambda message: log.info("%s", message))
        self.verifier: ProposalVerifier | None = None
        """Set to verify each proposal before it is shown (`verify = "before"`)."""
        self.changed = asyncio.Event()
        """Set whenever the set of pending proposals may have changed (the prompt waits on it)."""

    @classmethod
    def for_project(
        cls,
        root: Path,
        state_dir: Path | None = None,
        *,
        emit: Emit | None = None,
        after_commit: AfterCommit | None = None,
        notify: Notify | None = None,
    ) -> ProposalService:
        """The service with the project's own sandbox (sensitive names plus config deny globs)."""
        policy = PathPolicy(root, load_project_config(root).deny)
        return cls(
            root,
            state_dir,
            read=sandbox_reader(policy),
            emit=emit,
            after_commit=after_commit,
            notify=notify,
        )

    # Arrival and waiting.

    async def submit(self, args: ProposeChangeArgs) -> ProposeChangeResult:
        """The ProposeChange handler: pending with the canonical diff, or BridgeError at once.

        With a verifier, the proposal is built and its suites run before it is pending (or
        held back, when its sender asked for that and it is not verified)."""
        record = await self.intake.submit(args, verify=self.verifier is not None)
        if record.status == "verifying" and self.verifier is not None:
            record = await verify_arrival(self.verifier, self.journal, record)
        self.changed.set()
        return proposed(record)

    def pending(self) -> list[JournaledProposal]:
        """Undecided proposals, oldest first."""
        return self.journal.pending()

    def get(self, proposal_id: str) -> JournaledProposal:
        return self.journal.get(proposal_id)

    async def recheck(self, paths: Iterable[str] | None = None) -> list[JournaledProposal]:
        """Re-checks pending proposals touching `paths` (all when None); returns the stale ones."""
        stale = await self.intake.gone_stale(paths)
        for record in stale:
            self.notify(f"proposal {record.id} ({record.args.title}) is stale: {record.reason}")
        if stale:
            self.changed.set()
            await self.outbox.deliver()
        return stale

    async def on_files_changed(self, event: FilesChanged) -> list[JournaledProposal]:
        """Feed the watcher's FilesChanged here."""
        return await self.recheck(change.path for change in event.changes)

    async def replace_diff(self, proposal_id: str, diff: str) -> JournaledProposal:
        """The user edited the diff: re-check it against the files now; BridgeError if it fails."""
        record = await self.intake.replace_diff(proposal_id, diff)
        self.changed.set()
        return record

    # Decisions.

    def _decide(
        self, proposal_id: str, to: ProposalStatus, by: str, reason: str | None
    ) -> JournaledProposal:
        return self.journal.update(proposal_id, lambda rec: move(rec, to, by=by, reason=reason))

    async def reject(
        self, proposal_id: str, reason: str | None = None, by: str = "user"
    ) -> JournaledProposal:
        record = await asyncio.to_thread(self._decide, proposal_id, "rejected", by, reason or None)
        await asyncio.to_thread(self.fixes.ensure_clean_slate, record)
        self.changed.set()
        await self.outbox.deliver()
        return record

    async def approve(self, proposal_id: str, by: str = "user") -> JournaledProposal:
        """Local only: re-checks, builds the fix branch, runs the suite, tells the platform.

        Also finishes an approval a crash interrupted (status approved or applying).
        """
        record = await asyncio.to_thread(self.journal.get, proposal_id)
        with self.journal.apply_lock(record.id) as mine:
            if not mine:
                raise BridgeError(
                    ErrorCode.INVALID_ARGS,
                    f"proposal {record.id} is being applied by another process",
                    proposal_id=record.id,
                )
            if record.status == "pending":
                record = await asyncio.to_thread(self.intake.recheck_one, record)
                if record.status == "stale":
                    self.notify(f"proposal {record.id} is stale: {record.reason}")
                    self.changed.set()
                    await self.outbox.deliver()
                    return record
            if record.status not in IN_FLIGHT:
                record = await asyncio.to_thread(self._decide, record.id, "approved", by, None)
                self.changed.set()
                self.fixes.on_step("approved")
            record = await asyncio.to_thread(self.builder.settle, record)
        await self.outbox.deliver()
        return self.journal.get(record.id)

    # Crash recovery, the outbox and the daemon's loop.

    def recover_interrupted(self) -> list[JournaledProposal]:
        """Settles builds a crash interrupted; the CLI calls it before listing, so `fixes` never
        shows a half-made state."""
        return self.builder.recover_interrupted()

    def recover_one(self, record: JournaledProposal) -> JournaledProposal:
        return self.builder.recover_one(record)

    async def deliver_outbox(self) -> int:
        return await self.outbox.deliver()

    async def start(self) -> None:
        """On daemon start: settle interrupted builds, finish approved ones, flush the outbox."""
        for record in await asyncio.to_thread(self.journal.all):
            if record.status == "verifying":  # a crash mid-check: shown, without a verification
                await asyncio.to_thread(self.journal.update, record.id, _unverified)
            if record.status not in IN_FLIGHT:
                continue
            with self.journal.apply_lock(record.id) as mine:
                if mine:
                    await asyncio.to_thread(self.builder.settle, self.journal.get(record.id))
        self.changed.set()
        await self.outbox.deliver()

    async def run(self, interval_s: float = 2.0) -> None:
        """The daemon's background service: start(), then the outbox loop, until cancelled."""
        await self.start()
        await self.run_outbox(interval_s)

    async def run_outbox(self, interval_s: float = 2.0) -> None:
        """Daemon task: picks up decisions made by other processes and new pending ones."""
        seen = {r.id for r in self.journal.pending()}
        while True:
            await asyncio.sleep(interval_s)
            now_pending = {r.id for r in await asyncio.to_thread(self.journal.pending)}
            if now_pending != seen:
                seen = now_pending
                self.changed.set()
            await self.outbox.deliver()

    def fix_summaries(self) -> list[FixSummary]:
        """Every proposal that became (or tried to become) a fix branch."""
        return [
            FixSummary.from_proposal(r)
            for r in self.journal.all()
            if r.status in ("applied", "failed", "applying", "approved")
        ]


def _unverified(record: JournaledProposal) -> None:
    move(record, "pending")
