"""Every suite run, kept as one JSON file under the project's state dir, so a fix can show
before -> after (`fixes show`) without rerunning anything."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from opik_connect.config import project_state_dir
from opik_connect.private_files import atomic_write_private
from opik_connect.protocol import SuiteRunSummary

USER_TREE = "user"


class RunRecord(BaseModel):
    """A run's wire summary plus the local facts the platform does not need."""

    model_config = ConfigDict(extra="forbid")

    summary: SuiteRunSummary
    tree_path: str
    branch: str | None = None
    proposal_id: str | None = None
    dirty: bool | None = None
    entrypoint: str | None = None
    python: str | None = None


@dataclass(frozen=True)
class BeforeAfter:
    suite: str
    before: RunRecord | None
    """The latest run of the suite on the user's tree that started before `after`."""
    after: RunRecord


def new_run_id() -> str:
    """Sortable by time, unique without coordination."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def records_dir(root: Path) -> Path:
    path = project_state_dir(root) / "suite_runs"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def save_record(root: Path, record: RunRecord) -> Path:
    """Atomic and private (0600): a crash leaves the old file or the new one, never half."""
    directory = records_dir(root)
    path = directory / f"{record.summary.run_id}.json"
    atomic_write_private(path, record.model_dump_json(indent=2).encode("utf-8"))
    return path


def load_record(root: Path, run_id: str) -> RunRecord | None:
    path = records_dir(root) / f"{run_id}.json"
    if "/" in run_id or not path.is_file():
        return None
    return _read(path)


def list_records(
    root: Path,
    *,
    suite: str | None = None,
    tree: str | None = None,
    proposal_id: str | None = None,
) -> list[RunRecord]:
    """Matching records, oldest first. `tree` is 'user' or a fix branch name."""
    found = []
    for path in records_dir(root).glob("*.json"):
        record = _read(path)
        if record is None:
            continue
        summary = record.summary
        if suite is not None and summary.suite != suite:
            continue
        if tree is not None and summary.tree != tree:
            continue
        if proposal_id is not None and record.proposal_id != proposal_id:
            continue
        found.append(record)
    return sorted(found, key=lambda r: (r.summary.started_at, r.summary.run_id))


def latest_record(root: Path, suite: str, *, tree: str = USER_TREE) -> RunRecord | None:
    records = list_records(root, suite=suite, tree=tree)
    return records[-1] if records else None


def before_after(
    root: Path, *, branch: str | None = None, proposal_id: str | None = None
) -> list[BeforeAfter]:
    """For each suite run on a fix (by branch or proposal), its latest run and the user-tree run
    that preceded it; `before` is None if the suite never ran on the user's tree before."""
    if branch is None and proposal_id is None:
        raise ValueError("give a branch or a proposal id")
    afters = list_records(root, tree=branch, proposal_id=proposal_id)
    latest: dict[str, RunRecord] = {r.summary.suite: r for r in afters}
    pairs = []
    for suite, after in sorted(latest.items()):
        earlier = [
            r
            for r in list_records(root, suite=suite, tree=USER_TREE)
            if r.summary.started_at <= after.summary.started_at
        ]
        pairs.append(BeforeAfter(suite, earlier[-1] if earlier else None, after))
    return pairs


def _read(path: Path) -> RunRecord | None:
    try:
        return RunRecord.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return None
