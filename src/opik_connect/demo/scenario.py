"""What the demo runs (its trace, suite and question), what it records, and its error."""

from __future__ import annotations

from dataclasses import dataclass, field

from opik_connect.connect.proposals.journal import JournaledProposal
from opik_connect.protocol import SuiteRunSummary

TRACE_ID = "01a20cc8-8e80-7db4-9391-3add8bd68e37"
SUITE = "customer-support-qa"
FAILING_CASE = "refund-window"
QUESTION = (
    "A customer asked whether they can still return order A1002 for a refund and got only the "
    "delivery date back. Find the step in this trace that went wrong and propose the smallest fix."
)


class DemoError(Exception):
    """Something stopped the demo; shown as one line."""


@dataclass
class Outcome:
    before: SuiteRunSummary | None = None
    after: SuiteRunSummary | None = None
    session_id: str | None = None
    session_status: str | None = None
    final_answer: str | None = None
    proposal: JournaledProposal | None = None
    recorded: str = "nothing"
    problems: list[str] = field(default_factory=list)
