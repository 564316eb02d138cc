"""An approved proposal becomes its fix branch, and a crash in the middle is settled after.

Each step is journaled before the next (approved -> applying -> applied|failed), so after a
crash the record and git together say how far the build got: a complete branch is adopted, a
partial one is removed and the proposal is approved again, to be built anew.
"""

from __future__ import annotations

from pathlib import Path

from opik_connect.connect.fixes.branches import FixBranches, fix_branch_name
from opik_connect.connect.proposals.journal import JournaledProposal, ProposalJournal
from opik_connect.connect.proposals.state import ProposalStatus, move
from opik_connect.connect.proposals.verification import reusable
from opik_connect.git_runner import GitError
from opik_connect.protocol import BridgeError


class FixBuilder:
    """Builds fix branches for approved proposals and settles builds a crash interrupted."""

    def __init__(self, journal: ProposalJournal, fixes: FixBranches) -> None:
        self.journal = journal
        self.fixes = fixes

    def _move(
        self, proposal_id: str, to: ProposalStatus, reason: str | None = None, **fields: object
    ) -> JournaledProposal:
        """One journaled transition, with the fix fields that go with it."""

        def change(rec: JournaledProposal) -> None:
            move(rec, to, reason=reason)
            for key, value in fields.items():
                setattr(rec, key, value)

        return self.journal.update(proposal_id, change)

    def _applied(
        self, proposal_id: str, branch: str, commit: str, worktree: Path, **fields: object
    ) -> JournaledProposal:
        """Journal a complete fix branch, built now or found after a crash, as the active fix."""
        return self._move(
            proposal_id,
            "applied",
            branch=branch,
            commit=commit,
            worktree=str(worktree),
            fix_status="active",
            **fields,
        )

    def settle(self, record: JournaledProposal) -> JournaledProposal:
        """Under the apply lock: recover an interrupted build, then build what is still owed."""
        if record.status == "applying":
            record = self.recover_one(record)
        if record.status == "approved" and reusable(self.fixes, record):
            record = self._publish_verified(record)
        if record.status == "approved":
            self.fixes.ensure_clean_slate(record)
            record = self._build(record)
        return record

    def _publish_verified(self, record: JournaledProposal) -> JournaledProposal:
        """The verified build becomes the fix branch: no second build, no second suite run
        (its runs are journaled with the branch in the same write, so no rerun is owed)."""
        check = record.verification
        assert check is not None and check.commit is not None
        record = self._move(record.id, "applying", branch=fix_branch_name(record))
        try:
            branch = self.fixes.publish(record, check.commit)
        except (GitError, OSError):
            return self.recover_one(record)
        ran = {"suites_done": True, "suite_results": check.suite_results}
        worktree = self.fixes.worktree_for(record)
        fields = ran if check.suite_results else {}
        record = self._applied(record.id, branch, check.commit, worktree, **fields)
        self.fixes.on_step("journal_applied")
        return record

    def _build(self, record: JournaledProposal) -> JournaledProposal:
        """approved -> applying -> applied|failed, each journaled before the next step."""
        record = self._move(record.id, "applying", branch=fix_branch_name(record))
        try:
            branch, commit, worktree = self.fixes.build(record)
        except (BridgeError, GitError, OSError) as exc:
            found = self.fixes.recover(record)
            if found is None:
                why = exc.message if isinstance(exc, BridgeError) else str(exc)
                reason = f"the fix branch could not be built: {why}"
                return self._move(record.id, "failed", reason=reason, branch=None)
            branch, commit, worktree = found
        record = self._applied(record.id, branch, commit, worktree)
        self.fixes.on_step("journal_applied")
        return record

    def recover_one(self, record: JournaledProposal) -> JournaledProposal:
        """A crash mid-apply: either the branch is complete (applied) or gone (approved again)."""
        found = self.fixes.recover(record)
        if found is None:
            return self._move(record.id, "approved", branch=None, commit=None, worktree=None)
        return self._applied(record.id, *found)

    def recover_interrupted(self) -> list[JournaledProposal]:
        """Settles builds a crash interrupted (no holder of their lock) without building more."""
        settled = []
        for record in self.journal.all():
            if record.status != "applying":
                continue
            with self.journal.apply_lock(record.id) as mine:
                if mine:
                    settled.append(self.recover_one(self.journal.get(record.id)))
        return settled
