"""The ProposeChange command: file edits or a diff in, the proposal and its verification out."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from opik_connect.protocol.codes import Strict
from opik_connect.protocol.suites import Verification


class FileEdit(Strict):
    path: str = Field(description="File path relative to the repo root.")
    old_string: str = Field(
        description="Exact text now in the file (unique). Empty to create a new file."
    )
    new_string: str = Field(description="Replacement text.")
    delete: bool = Field(False, description="Delete the file: new_string '', old_string '' or all.")


class FileStat(Strict):
    path: str
    added: int
    removed: int
    change: Literal["added", "modified", "deleted"] = "modified"


class ProposeChangeArgs(Strict):
    title: str = Field(min_length=1, max_length=200)
    reason: str = Field(description="Root cause and evidence.")
    trace_id: str | None = None
    test_case_ids: list[str] = Field(default_factory=list)
    suite: str | None = None
    edits: list[FileEdit] | None = None
    diff: str | None = Field(None, description="A unified diff.")
    hold_if_unverified: bool = Field(
        False,
        description="When the daemon's verification fails, hold the proposal back from the "
        "user and return the result, so it can be revised first.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> ProposeChangeArgs:
        if (self.edits is None) == (self.diff is None):
            raise ValueError("give exactly one of 'edits' or 'diff'")
        return self


class ProposeChangeResult(Strict):
    proposal_id: str
    status: Literal["pending", "held"] = Field(
        "pending", description="'held': not shown to the user (failed a hold_if_unverified check)."
    )
    diff: str
    files: list[FileStat]
    verification: Verification | None = Field(
        None, description="The suite run on the proposal's build before the user saw it."
    )
