"""What the demo runs (its trace, suite and question), what it records, and its error."""

from __future__ import annotations

from dataclasses import dataclass, field

from opik_connect.connect.proposals.journal import JournaledProposal
from opik_connect.protocol import SuiteRunSummary

SUITE = "customer-support-qa"
FAILING_CASE = "refund-window"
DRAFTED_ITEM = "refund-window-late-order"
DRAFTED_ASSERTION = (
    "The answer states the refund policy's time limit and relates it to the customer's order"
)
QUESTION = (
    "A customer asked whether they can still return order A1003 for a refund and got only the "
    "delivery date back. Compare this trace with a successful one of the same kind, find the step "
    "that went wrong, add the trace as a test case and propose the smallest fix."
)


class DemoError(Exception):
    """Something stopped the demo; shown as one line."""


@dataclass
class Outcome:
    trace_id: str | None = None
    logged_by: str = ""
    scripted: bool = False
    tools: list[str] = field(default_factory=list)
    before: SuiteRunSummary | None = None
    after: SuiteRunSummary | None = None
    session_id: str | None = None
    session_status: str | None = None
    final_answer: str | None = None
    proposal: JournaledProposal | None = None
    recorded: str = "nothing"
    problems: list[str] = field(default_factory=list)
