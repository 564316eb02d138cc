"""Proposals on arrival and while they wait: planning, idempotency, the pending cap, staleness.

A ProposeChange is planned with the edit engine against the files as the read sandbox sees them
and journaled as pending. While it waits, a change to its files re-plans it; a diff that no
longer applies makes it stale.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path

from opik_connect.connect.proposals.command_id import current_command_id
from opik_connect.connect.proposals.edit_engine import (
    CanonicalChange,
    ReadCurrent,
    content_hash,
    plan_diff,
    plan_edits,
    read_current,
)
from opik_connect.connect.proposals.journal import JournaledProposal, ProposalJournal
from opik_connect.connect.proposals.state import ensure_pending, move
from opik_connect.connect.sandbox.outbound_redaction import (
    redact_diff,
    redact_error,
    redact_verification,
)
from opik_connect.connect.sandbox.policy import PathPolicy
from opik_connect.git_runner import GitError, run
from opik_connect.protocol import BridgeError, ErrorCode, ProposeChangeArgs, ProposeChangeResult

MAX_PENDING_PROPOSALS = 20
MAX_PENDING_BYTES = 8 << 20
"""Journal bytes all pending proposals may take together (one proposal is at most a frame's
arguments plus its diff, a few MiB): the platform cannot fill the disk with undecided work."""


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


def head_commit(root: Path) -> str | None:
    """HEAD's sha; None before the first commit or outside git."""
    try:
        done = run(root, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
    except GitError:
        return None
    return done.text if done.code == 0 and done.text else None


def proposed(record: JournaledProposal) -> ProposeChangeResult:
    """What the platform sees: the diff redacted; the journal and the terminal keep it exact."""
    check = record.verification
    return ProposeChangeResult(
        proposal_id=record.id,
        status="held" if record.status == "held" else "pending",
        diff=redact_diff(record.diff),
        files=record.files,
        verification=redact_verification(check) if check is not None else None,
    )


class ProposalIntake:
    """Turns ProposeChange into pending proposals and keeps them current while they wait."""

    def __init__(self, root: Path, journal: ProposalJournal, read: ReadCurrent) -> None:
        self.root = root
        self.journal = journal
        self.read = read

    def _plan(self, args: ProposeChangeArgs) -> CanonicalChange:
        if args.edits is not None:
            return plan_edits(args.edits, self.read)
        return plan_diff(args.diff or "", self.read)

    async def submit(self, args: ProposeChangeArgs, *, verify: bool = False) -> JournaledProposal:
        """Plans and journals a pending proposal (`verifying` with `verify`), or raises
        BridgeError at once.

        Idempotent per command id (set by the link): a ProposeChange the platform re-sends,
        even to a restarted daemon, gets the proposal it made the first time.
        """
        command_id = current_command_id.get()
        if command_id is not None:
            earlier = await asyncio.to_thread(self.journal.by_command, command_id)
            if earlier is not None:
                return earlier
        try:
            change = await asyncio.to_thread(self._plan, args)
        except BridgeError as exc:
            raise redact_error(exc) from exc
        record = JournaledProposal(
            id=self.journal.new_id(),
            args=args,
            diff=change.diff,
            files=change.files,
            base_head=await asyncio.to_thread(head_commit, self.root),
            hashes=change.base_hashes(),
            command_id=command_id,
            status="verifying" if verify else "pending",
        )
        return await asyncio.to_thread(self.journal.save_new, record, self._check_room)

    def _check_room(self, record: JournaledProposal) -> None:
        """Refuses a proposal that would take the pending ones over the count or byte cap."""
        waiting = [r for r in self.journal.all() if r.status in ("pending", "verifying")]
        size = len(self.journal.encoded(record))
        taken = sum(len(self.journal.encoded(r)) for r in waiting)
        if len(waiting) < MAX_PENDING_PROPOSALS and taken + size <= MAX_PENDING_BYTES:
            return
        raise BridgeError(
            ErrorCode.PENDING_PROPOSALS_FULL,
            f"{len(waiting)} proposals ({taken} bytes) are already waiting for the user's "
            f"decision; at most {MAX_PENDING_PROPOSALS} proposals and {MAX_PENDING_BYTES} bytes "
            "may wait: ask the user to approve or reject some first",
            pending=len(waiting),
            pending_bytes=taken,
            proposal_bytes=size,
            max_pending=MAX_PENDING_PROPOSALS,
            max_pending_bytes=MAX_PENDING_BYTES,
        )

    def recheck_one(self, record: JournaledProposal) -> JournaledProposal:
        """Re-plans a pending proposal whose files changed; stale when it no longer applies."""
        try:
            current = {path: content_hash(self.read(path)) for path in record.hashes}
        except BridgeError as exc:
            current = {"": exc.message}
        if current == record.hashes:
            return record

        def refresh(rec: JournaledProposal) -> None:
            if rec.status != "pending":
                return
            try:
                change = plan_diff(rec.diff, self.read)
            except BridgeError as exc:
                reason = f"the files changed and the diff no longer applies: {exc.message}"
                move(rec, "stale", by="staleness check", reason=reason)
                return
            rec.diff, rec.files, rec.hashes = change.diff, change.files, change.base_hashes()

        return self.journal.update(record.id, refresh)

    async def gone_stale(self, paths: Iterable[str] | None = None) -> list[JournaledProposal]:
        """Re-checks pending proposals touching `paths` (all when None); returns the stale ones."""
        wanted = None if paths is None else set(paths)
        stale = []
        for record in await asyncio.to_thread(self.journal.pending):
            if wanted is not None and not wanted.intersection(record.hashes):
                continue
            updated = await asyncio.to_thread(self.recheck_one, record)
            if updated.status == "stale":
                stale.append(updated)
        return stale

    async def replace_diff(self, proposal_id: str, diff: str) -> JournaledProposal:
        """The user edited the diff: re-check it against the files now; BridgeError if it fails."""
        change = await asyncio.to_thread(plan_diff, diff, self.read)

        def replace(rec: JournaledProposal) -> None:
            ensure_pending(rec)
            rec.diff, rec.files, rec.hashes = change.diff, change.files, change.base_hashes()

        return await asyncio.to_thread(self.journal.update, proposal_id, replace)
