"""ProposalService: proposals from arrival to decision, and the decision to the platform.

`submit` is the daemon's ProposeChange handler: it plans the change with the edit engine,
journals it and answers at once. Only local code (the terminal prompt, `opik-connect approve`)
calls `approve`; the platform has no command that reaches it. Decisions leave through the
journal's outbox (`deliver_outbox`), so each reaches the platform once, even across restarts
and when another process (the CLI) made the decision.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from pydantic import BaseModel

from opik_connect.config import load_project_config, project_state_dir
from opik_connect.connect.fixes.branches import FixBranches, FixRecord, fix_branch_name
from opik_connect.connect.proposals.command_id import current_command_id
from opik_connect.connect.proposals.edit_engine import (
    CanonicalChange,
    FileText,
    ReadCurrent,
    content_hash,
    plan_diff,
    plan_edits,
    read_current,
)
from opik_connect.connect.proposals.journal import ProposalJournal, ProposalRecord
from opik_connect.connect.sandbox.outbound_redaction import (
    redact_decision,
    redact_error,
    redact_text,
)
from opik_connect.connect.sandbox.policy import PathPolicy
from opik_connect.git_runner import GitError, run
from opik_connect.protocol import (
    BridgeError,
    ErrorCode,
    FilesChanged,
    ProposeChangeArgs,
    ProposeChangeResult,
    SuiteRunSummary,
)

log = logging.getLogger(__name__)

Emit = Callable[[BaseModel], Awaitable[None]]
"""Sends an event to the platform; returns only once the link has confirmed delivery."""
AfterCommit = Callable[[FixRecord], Awaitable[list[SuiteRunSummary]]]
"""Runs the proposal's suite on the fix worktree (provided by the suites module)."""
Notify = Callable[[str], None]


def git_visible(root: Path) -> Callable[[str, bool], bool]:
    """Git's view of one path, asked synchronously (the engine reads in a worker thread)."""

    def visible(rel: str, exists: bool) -> bool:
        """Deny by default: a path git cannot judge (e.g. beyond a symlink) is not visible.

        check-ignore refuses literal pathspecs (a magic-looking path there is an error)."""
        if not exists:
            ignored = run(
                root, "--no-literal-pathspecs", "check-ignore", "-q", "--", rel, check=False
            )
            return ignored.code == 1
        done = run(
            root,
            "--literal-pathspecs",
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            rel,
            check=False,
        )
        return done.code == 0 and rel.encode() in done.out.split(b"\0")

    return visible


def sandbox_reader(policy: PathPolicy) -> ReadCurrent:
    """The read sandbox's rules for proposal paths: what ReadFile would read, nothing more."""
    visible = git_visible(policy.root)
    return lambda path: read_current(policy, visible, path)


def _describe(exc: Exception) -> str:
    return exc.message if isinstance(exc, BridgeError) else str(exc)


def _head(root: Path) -> str | None:
    """HEAD's sha; None before the first commit or outside git."""
    try:
        done = run(root, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
    except GitError:
        return None
    return done.text if done.code == 0 and done.text else None


def _proposed(record: ProposalRecord) -> ProposeChangeResult:
    """What the platform sees: the diff redacted; the journal and the terminal keep it exact."""
    return ProposeChangeResult(
        proposal_id=record.id, diff=redact_text(record.diff), files=record.files
    )


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
        self.read = read
        self.emit = emit
        self.after_commit = after_commit
        self.notify = notify or (lambda message: log.info("%s", message))
        self.changed = asyncio.Event()
        """Set whenever the set of pending proposals may have changed (the prompt waits on it)."""
        self._outbox_lock = asyncio.Lock()

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

    # --- arrival --------------------------------------------------------------------------------

    def _read(self, path: str) -> FileText:
        return self.read(path)

    def _plan(self, args: ProposeChangeArgs) -> CanonicalChange:
        if args.edits is not None:
            return plan_edits(args.edits, self._read)
        return plan_diff(args.diff or "", self._read)

    async def submit(self, args: ProposeChangeArgs) -> ProposeChangeResult:
        """The ProposeChange handler: pending with the canonical diff, or BridgeError at once.

        Idempotent per command id (set by the link): a ProposeChange the platform re-sends,
        even to a restarted daemon, answers with the proposal it made the first time.
        """
        command_id = current_command_id.get()
        if command_id is not None:
            earlier = await asyncio.to_thread(self.journal.by_command, command_id)
            if earlier is not None:
                return _proposed(earlier)
        try:
            change = await asyncio.to_thread(self._plan, args)
        except BridgeError as exc:
            raise redact_error(exc) from exc
        record = ProposalRecord(
            id=self.journal.new_id(),
            args=args,
            diff=change.diff,
            files=change.files,
            base_head=await asyncio.to_thread(_head, self.root),
            hashes=change.base_hashes(),
            command_id=command_id,
        )
        record = await asyncio.to_thread(self.journal.save_new, record)
        self.changed.set()
        return _proposed(record)

    def pending(self) -> list[ProposalRecord]:
        """Undecided proposals, oldest first."""
        return self.journal.pending()

    def get(self, proposal_id: str) -> ProposalRecord:
        return self.journal.get(proposal_id)

    # --- staleness ------------------------------------------------------------------------------

    def _recheck_one(self, record: ProposalRecord) -> ProposalRecord:
        """Re-plans a pending proposal whose files changed; stale when it no longer applies."""
        try:
            current = {path: content_hash(self._read(path)) for path in record.hashes}
        except BridgeError as exc:
            current = {"": exc.message}
        if current == record.hashes:
            return record

        def refresh(rec: ProposalRecord) -> None:
            if rec.status != "pending":
                return
            try:
                change = plan_diff(rec.diff, self._read)
            except BridgeError as exc:
                rec.status = "stale"
                rec.reason = f"the files changed and the diff no longer applies: {exc.message}"
                rec.decided_at = time.time()
                rec.decided_by = "staleness check"
                return
            rec.diff, rec.files, rec.hashes = change.diff, change.files, change.base_hashes()

        return self.journal.update(record.id, refresh)

    async def recheck(self, paths: Iterable[str] | None = None) -> list[ProposalRecord]:
        """Re-checks pending proposals touching `paths` (all when None); returns the stale ones."""
        wanted = None if paths is None else set(paths)
        stale = []
        for record in self.journal.pending():
            if wanted is not None and not wanted.intersection(record.hashes):
                continue
            updated = await asyncio.to_thread(self._recheck_one, record)
            if updated.status == "stale":
                stale.append(updated)
                self.notify(
                    f"proposal {updated.id} ({updated.args.title}) is stale: {updated.reason}"
                )
        if stale:
            self.changed.set()
            await self.deliver_outbox()
        return stale

    async def on_files_changed(self, event: FilesChanged) -> list[ProposalRecord]:
        """Feed the watcher's FilesChanged here."""
        return await self.recheck(change.path for change in event.changes)

    # --- decisions ------------------------------------------------------------------------------

    def _claim(self, proposal_id: str, status: str, by: str, reason: str | None) -> ProposalRecord:
        def decide(rec: ProposalRecord) -> None:
            if rec.status != "pending":
                raise BridgeError(
                    ErrorCode.INVALID_ARGS,
                    f"proposal {rec.id} is already {rec.status}",
                    proposal_id=rec.id,
                    status=rec.status,
                )
            rec.status = status  # type: ignore[assignment]
            rec.reason = reason
            rec.decided_at = time.time()
            rec.decided_by = by

        return self.journal.update(proposal_id, decide)

    async def reject(
        self, proposal_id: str, reason: str | None = None, by: str = "user"
    ) -> ProposalRecord:
        record = await asyncio.to_thread(self._claim, proposal_id, "rejected", by, reason or None)
        self.changed.set()
        await self.deliver_outbox()
        return record

    async def approve(self, proposal_id: str, by: str = "user") -> ProposalRecord:
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
                record = await asyncio.to_thread(self._recheck_one, record)
                if record.status == "stale":
                    self.notify(f"proposal {record.id} is stale: {record.reason}")
                    self.changed.set()
                    await self.deliver_outbox()
                    return record
                record = await asyncio.to_thread(self._claim, record.id, "approved", by, None)
                self.changed.set()
                self.fixes.on_step("approved")
            elif record.status not in ("approved", "applying"):
                raise BridgeError(
                    ErrorCode.INVALID_ARGS,
                    f"proposal {record.id} is already {record.status}",
                    proposal_id=record.id,
                    status=record.status,
                )
            record = await asyncio.to_thread(self._settle, record)
        await self.deliver_outbox()
        return self.journal.get(record.id)

    def _settle(self, record: ProposalRecord) -> ProposalRecord:
        """Under the apply lock: recover an interrupted apply, then build what is still owed."""
        if record.status == "applying":
            record = self.recover_one(record)
        if record.status == "approved":
            self.fixes.ensure_clean_slate(record)
            record = self._apply(record)
        return record

    def _set(self, proposal_id: str, **fields: object) -> ProposalRecord:
        def assign(rec: ProposalRecord) -> None:
            for key, value in fields.items():
                setattr(rec, key, value)

        return self.journal.update(proposal_id, assign)

    def _set_applied(
        self, proposal_id: str, branch: str, commit: str, worktree: Path
    ) -> ProposalRecord:
        """Journal a complete fix branch, built now or found after a crash, as the active fix."""
        return self._set(
            proposal_id,
            status="applied",
            branch=branch,
            commit=commit,
            worktree=str(worktree),
            fix_status="active",
        )

    def _apply(self, record: ProposalRecord) -> ProposalRecord:
        """approved -> applying -> applied|failed, each journaled before the next step."""
        branch = fix_branch_name(record)
        record = self._set(record.id, status="applying", branch=branch)
        try:
            branch, commit, worktree = self.fixes.build(record)
        except (BridgeError, GitError, OSError) as exc:
            found = self.fixes.recover(record)
            if found is None:
                return self._set(
                    record.id,
                    status="failed",
                    branch=None,
                    reason=f"the fix branch could not be built: {_describe(exc)}",
                )
            branch, commit, worktree = found
        record = self._set_applied(record.id, branch, commit, worktree)
        self.fixes.on_step("journal_applied")
        return record

    # --- restart and outbox ---------------------------------------------------------------------

    async def start(self) -> None:
        """On daemon start: settle interrupted applies, finish approved ones, flush the outbox."""
        for record in await asyncio.to_thread(self.journal.all):
            if record.status not in ("approved", "applying"):
                continue
            with self.journal.apply_lock(record.id) as mine:
                if mine:
                    await asyncio.to_thread(self._settle, self.journal.get(record.id))
        self.changed.set()
        await self.deliver_outbox()

    def recover_interrupted(self) -> list[ProposalRecord]:
        """Settles applies a crash interrupted (no holder of their lock) without building more.

        The CLI calls this before listing, so `fixes` never shows a half-made state.
        """
        settled = []
        for record in self.journal.all():
            if record.status != "applying":
                continue
            with self.journal.apply_lock(record.id) as mine:
                if mine:
                    settled.append(self.recover_one(self.journal.get(record.id)))
        return settled

    def recover_one(self, record: ProposalRecord) -> ProposalRecord:
        """A crash mid-apply: either the branch is complete (applied) or gone (approved again)."""
        found = self.fixes.recover(record)
        if found is None:
            return self._set(record.id, status="approved", branch=None, commit=None, worktree=None)
        return self._set_applied(record.id, *found)

    async def _run_suites(self, record: ProposalRecord) -> ProposalRecord:
        assert self.after_commit is not None
        try:
            results = await self.after_commit(FixRecord.from_proposal(record))
        except Exception as exc:  # the suite must never block the decision reaching Ollie
            log.exception("suite rerun for proposal %s failed", record.id)
            return await asyncio.to_thread(
                self._set, record.id, suites_done=True, reason=f"suite rerun failed: {exc}"
            )
        return await asyncio.to_thread(
            self._set, record.id, suites_done=True, suite_results=[*record.suite_results, *results]
        )

    async def deliver_outbox(self) -> int:
        """Sends every decided-but-undelivered ProposalDecided; marks each once confirmed."""
        if self.emit is None:
            return 0
        sent = 0
        async with self._outbox_lock:
            for record in await asyncio.to_thread(self.journal.undelivered):
                if record.status == "applied" and not record.suites_done and self.after_commit:
                    record = await self._run_suites(record)
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
            await self.deliver_outbox()

    # --- edit in the prompt ---------------------------------------------------------------------

    async def replace_diff(self, proposal_id: str, diff: str) -> ProposalRecord:
        """The user edited the diff: re-check it against the files now; BridgeError if it fails."""
        change = await asyncio.to_thread(plan_diff, diff, self._read)

        def replace(rec: ProposalRecord) -> None:
            if rec.status != "pending":
                raise BridgeError(
                    ErrorCode.INVALID_ARGS, f"proposal {rec.id} is already {rec.status}"
                )
            rec.diff, rec.files, rec.hashes = change.diff, change.files, change.base_hashes()

        record = await asyncio.to_thread(self.journal.update, proposal_id, replace)
        self.changed.set()
        return record

    def fix_records(self) -> list[FixRecord]:
        """Every proposal that became (or tried to become) a fix branch."""
        return [
            FixRecord.from_proposal(r)
            for r in self.journal.all()
            if r.status in ("applied", "failed", "applying", "approved")
        ]
