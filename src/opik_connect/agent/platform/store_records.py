"""The records the platform store keeps, and how each maps to and from its row (either backend)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from opik_connect.protocol import ProposalDecided, SuiteRunSummary


class SessionRecord(BaseModel):
    id: str
    runner_id: str | None = None
    runner_name: str | None = None
    question: str
    trace_id: str | None = None
    suite: str | None = None
    case_ids: list[str] = Field(default_factory=list)
    status: str = "pending"
    final_answer: str | None = None
    error: str | None = None
    transcript_path: str | None = None
    usage: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None


class SessionEventRecord(BaseModel):
    session_id: str
    seq: int
    type: str
    data: dict[str, Any]
    at: float


class SentProposalRecord(BaseModel):
    proposal_id: str
    session_id: str | None
    runner_id: str
    title: str
    reason: str
    trace_id: str | None = None
    suite: str | None = None
    test_case_ids: list[str] = Field(default_factory=list)
    diff: str
    files: list[dict[str, Any]] = Field(default_factory=list)
    created_at: float


class DecisionRecord(BaseModel):
    runner_id: str
    decided_at: float
    decision: ProposalDecided


class SuiteResultRecord(BaseModel):
    runner_id: str
    proposal_id: str | None = None
    session_id: str | None = None
    recorded_at: float
    run: SuiteRunSummary


class RecordedDecision(BaseModel):
    """What record_decision kept: the first copy of a decision, and whether this call took it."""

    record: DecisionRecord
    first: bool


class FixOutcomeRecord(BaseModel):
    """An approved proposal: where it was committed and what it did to its suite."""

    proposal_id: str
    runner_id: str
    branch: str | None = None
    commit: str | None = None
    suite: str | None = None
    before_status: str | None = None
    before_run_id: str | None = None
    after_status: str | None = None
    after_run_id: str | None = None
    recorded_at: float


SESSION_COLUMNS = tuple(SessionRecord.model_fields)
_JSON_SESSION_COLUMNS = {"case_ids", "usage"}


def dumps_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def session_values(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        key: dumps_json(value) if key in _JSON_SESSION_COLUMNS else value
        for key, value in fields.items()
    }


def session_from_row(row: Mapping[str, Any]) -> SessionRecord:
    data = dict(row)
    for key in _JSON_SESSION_COLUMNS:
        data[key] = json.loads(data[key])
    return SessionRecord.model_validate(data)


def proposal_from_row(row: Mapping[str, Any]) -> SentProposalRecord:
    data = dict(row)
    data["test_case_ids"] = json.loads(data["test_case_ids"])
    data["files"] = json.loads(data["files"])
    return SentProposalRecord.model_validate(data)


def decision_from_row(row: Mapping[str, Any]) -> DecisionRecord:
    return DecisionRecord(
        runner_id=row["runner_id"],
        decided_at=row["decided_at"],
        decision=ProposalDecided.model_validate_json(row["data"]),
    )


def suite_result_from_row(row: Mapping[str, Any]) -> SuiteResultRecord:
    return SuiteResultRecord(
        runner_id=row["runner_id"],
        proposal_id=row["proposal_id"],
        session_id=row["session_id"],
        recorded_at=row["recorded_at"],
        run=SuiteRunSummary.model_validate_json(row["data"]),
    )


def fix_from_row(row: Mapping[str, Any]) -> FixOutcomeRecord:
    data = dict(row)
    data["commit"] = data.pop("commit_sha")
    return FixOutcomeRecord.model_validate(data)
