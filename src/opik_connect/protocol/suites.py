"""Suite runs and a proposal's verification: the RunSuite command and its results."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from opik_connect.protocol.codes import Strict

AssertionStatus = Literal["passed", "failed", "error", "skipped"]
RunStatus = Literal["passed", "failed", "error"]


class AssertionVerdict(Strict):
    assertion: str
    kind: str = Field(description="'llm' for natural language, else the deterministic kind.")
    status: AssertionStatus
    reason: str = ""
    confidence: float | None = None


class RunOutcome(Strict):
    run_index: int
    status: RunStatus
    output: Any = None
    error: str | None = None
    duration_s: float = 0.0
    assertions: list[AssertionVerdict] = Field(default_factory=list)
    trace_id: str | None = None
    """The run's trace in the Opik server or platform sink it was logged to, when known."""


class ItemResult(Strict):
    item_id: str
    description: str = ""
    passed: bool
    runs_passed: int
    runs_needed: int
    runs_total: int
    runs: list[RunOutcome] = Field(default_factory=list)


class SuiteRunSummary(Strict):
    run_id: str
    suite: str
    status: RunStatus
    commit: str | None = None
    tree: str = Field(description="'user' for the user's checkout, else the fix branch name.")
    items: list[ItemResult]
    started_at: str
    duration_s: float
    judge: str = Field(description="Who judged natural-language assertions, e.g. 'none'.")


VerificationStatus = Literal["verified", "not_verified", "regression", "error"]


class ItemChange(Strict):
    """One suite item, on the proposal's base and on its build."""

    suite: str
    item_id: str
    before: Literal["passed", "failed", "new"]
    after: Literal["passed", "failed"]
    target: bool = Field(description="An item the proposal names (or one failing before).")
    detail: str = Field("", description="Why it fails after, e.g. 'run 2: output does not ...'.")


class Verification(Strict):
    """A proposal built in a scratch worktree and its suites run there, before anyone decides."""

    status: VerificationStatus
    summary: str = Field(description="The one line the approval panel shows.")
    base_head: str | None = None
    commit: str | None = Field(None, description="The verified build; approval reuses it.")
    diff_sha256: str | None = Field(None, description="The diff that was built.")
    items: list[ItemChange] = Field(default_factory=list)
    suite_results: list[SuiteRunSummary] = Field(default_factory=list)

    @property
    def green(self) -> bool:
        return self.status == "verified"


class RunSuiteArgs(Strict):
    suite: str
    branch: str | None = Field(None, description="A fix branch; None runs on the user's tree.")
    item_ids: list[str] | None = None
