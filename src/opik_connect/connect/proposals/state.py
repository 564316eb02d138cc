"""The proposal state machine: every status a proposal can have and the moves between them.

Status changes happen only through `move`, so the allowed transitions live in one table:

    verifying -> pending | held                  (checked before it is shown; see verification)
    pending  -> approved | rejected | stale      (the user decides, or the files moved on)
    approved -> applying                         (the fix branch is being built)
    applying -> applied | failed | approved      (built; could not be built; crash, branch gone)

rejected, stale, applied and failed are final: their decision is owed to the platform. held is
final too, but no one decided it: its sender asked to revise it rather than show it unverified.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from opik_connect.protocol import BridgeError, ErrorCode

if TYPE_CHECKING:
    from opik_connect.connect.proposals.journal import JournaledProposal

ProposalStatus = Literal[
    "verifying", "held", "pending", "approved", "rejected", "stale", "applying", "applied", "failed"
]
FixStatus = Literal["active", "merged", "dropped"]

TRANSITIONS: dict[ProposalStatus, frozenset[ProposalStatus]] = {
    "verifying": frozenset({"pending", "held"}),
    "held": frozenset(),
    "pending": frozenset({"approved", "rejected", "stale"}),
    "approved": frozenset({"applying"}),
    "applying": frozenset({"applied", "failed", "approved"}),
    "rejected": frozenset(),
    "stale": frozenset(),
    "applied": frozenset(),
    "failed": frozenset(),
}
DECIDED: frozenset[ProposalStatus] = frozenset({"rejected", "stale", "applied", "failed"})
"""Statuses whose decision is final and owed to the platform."""
DECISIONS: frozenset[ProposalStatus] = frozenset({"approved", "rejected", "stale"})
"""Moves out of pending: they record who decided and when."""
IN_FLIGHT: frozenset[ProposalStatus] = frozenset({"approved", "applying"})
"""Approved but its fix branch not settled yet (a crash may have interrupted it)."""


def move(
    record: JournaledProposal,
    to: ProposalStatus,
    *,
    by: str | None = None,
    reason: str | None = None,
) -> None:
    """Moves `record` to `to` or raises BridgeError(invalid_args) naming its current status.

    A decision (out of pending) records `by`, `reason` and the time; a later move keeps the
    decision's record and sets `reason` only when one is given (why a build failed)."""
    if to not in TRANSITIONS[record.status]:
        raise _already(record)
    if to in DECISIONS and record.status == "pending":
        record.decided_at = time.time()
        record.decided_by = by
        record.reason = reason
    elif reason is not None:
        record.reason = reason
    record.status = to


def ensure_pending(record: JournaledProposal) -> None:
    """Refuses a change only an undecided proposal may take (e.g. the user's edit of its diff)."""
    if record.status != "pending":
        raise _already(record)


def _already(record: JournaledProposal) -> BridgeError:
    return BridgeError(
        ErrorCode.INVALID_ARGS,
        f"proposal {record.id} is already {record.status}",
        proposal_id=record.id,
        status=record.status,
    )
