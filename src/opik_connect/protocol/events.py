"""Events (daemon -> platform): heartbeats, file changes, decisions and suite results."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from opik_connect.protocol.codes import Strict
from opik_connect.protocol.suites import SuiteRunSummary


class RootSummary(Strict):
    root: str
    visible_files: int
    branch: str | None
    head: str | None


class Heartbeat(Strict):
    sent_at: float


class FileChange(Strict):
    path: str
    change: Literal["added", "modified", "deleted"]


class FilesChanged(Strict):
    changes: list[FileChange]


class ProposalDecided(Strict):
    proposal_id: str
    decision: Literal["approved", "rejected", "stale"]
    reason: str | None = None
    branch: str | None = None
    commit: str | None = None
    suite_results: list[SuiteRunSummary] = Field(default_factory=list)


class SuiteResult(Strict):
    run: SuiteRunSummary
    proposal_id: str | None = None
