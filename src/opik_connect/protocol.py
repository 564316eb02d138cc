"""The wire contract between the daemon (connect/) and the platform (agent/).

Both sides import this module and nothing else defines a message, so the two can never drift.
Read commands keep the names, arguments, result fields and error codes of Opik's own bridge.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 1 << 20
"""Frames over this size are refused with close code CLOSE_FRAME_TOO_LARGE."""

CLOSE_FRAME_TOO_LARGE = 1009
"""Websocket close code (RFC 6455 'message too big') for a frame over MAX_FRAME_BYTES."""
CLOSE_AUTH_FAILED = 4401
"""Close code for a handshake that cannot be authenticated (unknown runner, bad pairing)."""
CLOSE_PROTOCOL_VERSION = 4426
"""Close code for a peer speaking a protocol version we do not."""


class ErrorCode(StrEnum):
    # Opik bridge codes.
    PATH_TRAVERSAL = "path_traversal"
    FILE_NOT_FOUND = "file_not_found"
    BINARY_FILE = "binary_file"
    PERMISSION_DENIED = "permission_denied"
    SENSITIVE_PATH = "sensitive_path"
    TIMEOUT = "timeout"
    LIMIT_REACHED = "limit_reached"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_ARGS = "invalid_args"
    AUTH_FAILED = "auth_failed"
    INTERNAL = "internal"
    # Frame-level problems.
    MALFORMED_FRAME = "malformed_frame"
    NOT_PAIRED = "not_paired"
    # Proposals (edit engine).
    MATCH_NOT_FOUND = "match_not_found"
    MATCH_AMBIGUOUS = "match_ambiguous"
    EDITS_OVERLAP = "edits_overlap"
    NO_CHANGE = "no_change"
    PATCH_FAILED = "patch_failed"
    SYNTAX_ERROR = "syntax_error"
    PROPOSAL_NOT_FOUND = "proposal_not_found"
    PENDING_PROPOSALS_FULL = "pending_proposals_full"
    # Suites.
    SUITE_NOT_FOUND = "suite_not_found"
    SUITE_INVALID = "suite_invalid"
    # Asking Ollie (the platform's HTTP/websocket API).
    NO_API_KEY = "no_api_key"
    RUNNER_NOT_FOUND = "runner_not_found"
    SESSION_NOT_FOUND = "session_not_found"
    ENTRYPOINT_NOT_FOUND = "entrypoint_not_found"
    ENTRYPOINT_AMBIGUOUS = "entrypoint_ambiguous"
    AGENT_ENVIRONMENT = "agent_environment"


class BridgeError(Exception):
    """An error with a wire code; raised by command handlers and surfaced to the platform as is."""

    def __init__(self, code: ErrorCode, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.details = details

    def to_body(self) -> ErrorBody:
        return ErrorBody(code=self.code, message=self.message, details=self.details)

    @classmethod
    def from_body(cls, body: ErrorBody) -> BridgeError:
        return cls(body.code, body.message, **body.details)


class Strict(BaseModel):
    """Base for wire payloads: unknown fields are refused, so typos surface as invalid_args."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(Strict):
    code: ErrorCode
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


# --- Read commands (platform -> daemon), as in Opik's bridge ------------------------------------


class ReadFileArgs(Strict):
    path: str = Field(description="File path relative to the repo root.")
    offset: int = Field(0, ge=0, description="First line to return, 0-based.")
    limit: int = Field(2000, ge=1, le=10_000, description="Maximum number of lines.")


class ReadFileResult(Strict):
    content: str
    total_lines: int
    truncated: bool
    encoding: str = "utf-8"
    redactions: int = 0


class ListFilesArgs(Strict):
    pattern: str = Field("**/*", description="Glob, default '**/*'.")
    path: str = Field(".", description="Directory to list, default '.'.")


class ListFilesResult(Strict):
    files: list[str]
    total: int
    truncated: bool


class SearchFilesArgs(Strict):
    pattern: str = Field(max_length=500, description="A regular expression.")
    glob: str | None = Field(None, description="Only files matching this glob.")
    path: str = Field(".", description="Directory to search, default '.'.")


class SearchMatch(Strict):
    file: str
    line: int
    content: str
    context_before: list[str] = Field(default_factory=list)
    context_after: list[str] = Field(default_factory=list)


class SearchFilesResult(Strict):
    matches: list[SearchMatch]
    total_matches: int
    truncated: bool
    redactions: int = 0


# --- Proposals ----------------------------------------------------------------------------------


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


# --- Suites -------------------------------------------------------------------------------------

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


# --- Events (daemon -> platform) ----------------------------------------------------------------


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


COMMANDS: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "ReadFile": (ReadFileArgs, ReadFileResult),
    "ListFiles": (ListFilesArgs, ListFilesResult),
    "SearchFiles": (SearchFilesArgs, SearchFilesResult),
    "ProposeChange": (ProposeChangeArgs, ProposeChangeResult),
    "RunSuite": (RunSuiteArgs, SuiteRunSummary),
}
"""Every command the platform may send, with its argument and result models."""

EVENTS: dict[str, type[BaseModel]] = {
    "Heartbeat": Heartbeat,
    "FilesChanged": FilesChanged,
    "ProposalDecided": ProposalDecided,
    "SuiteResult": SuiteResult,
}
"""Every event the daemon may send."""


# --- Handshake ----------------------------------------------------------------------------------


class PairRequest(Strict):
    """Daemon -> platform, unsigned: asks to pair. The activation key rides only this frame."""

    runner_id: str
    runner_name: str
    project: str
    activation_key: str = Field(description="32 random bytes, base64url; over wss or loopback.")


class PairPending(Strict):
    """Platform -> daemon: the pairing waits for an operator to confirm this code."""

    code: str
    expires_at: float


class Paired(Strict):
    """Platform -> daemon: the pairing is confirmed; session_id salts the key derivation."""

    session_id: str


class ConfirmPairing(Strict):
    """Operator -> platform (`opik-connect platform pair CODE`), authenticated by the platform's
    own token from its 0600 run file; answered with PairingConfirmed or a FrameError."""

    code: str
    token: str


class PairingConfirmed(Strict):
    runner_id: str
    runner_name: str
    project: str


class Hello(Strict):
    """Daemon -> platform, the first frame of every authenticated connection."""

    protocol_version: int = PROTOCOL_VERSION
    runner_id: str
    runner_name: str
    project: str
    root: RootSummary
    nonce: str


class Welcome(Strict):
    """Platform -> daemon: the connection is authenticated; nonce completes the connection id."""

    nonce: str
    heartbeat_interval_s: float = 10.0


class Ack(Strict):
    """Either side: these result or event ids arrived and may leave the sender's buffer."""

    ids: list[str]


class FrameError(Strict):
    """Either side: a frame could not be processed (it may carry no id)."""

    error: ErrorBody
    ref: str | None = None


class CommandResult(Strict):
    ok: bool
    result: dict[str, Any] | None = None
    error: ErrorBody | None = None


# --- Asking Ollie (client -> platform, on the platform's /v1/ask websocket) --------------------


class AskRequest(Strict):
    """The first message on /v1/ask: what to ask and with which context."""

    question: str = Field(min_length=1, max_length=20_000)
    trace_id: str | None = None
    suite: str | None = None
    case_ids: list[str] = Field(default_factory=list)
    runner: str | None = Field(None, description="Runner id or name; None = the only one.")


class AskEvent(Strict):
    """Platform -> client, one per message: a session's progress. The last one has type
    'result' (data: the session record) or 'error' (data: an ErrorBody)."""

    session_id: str | None
    seq: int
    type: str
    data: dict[str, Any] = Field(default_factory=dict)


# --- Envelope -----------------------------------------------------------------------------------

FrameKind = Literal["control", "command", "result", "event", "ack", "error"]


class Frame(Strict):
    """Every websocket message is one Frame as JSON text."""

    v: int = PROTOCOL_VERSION
    kind: FrameKind
    type: str
    id: str
    seq: int = Field(0, ge=0)
    payload: dict[str, Any] = Field(default_factory=dict)
    sig: str | None = None


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""Built once: json.dumps with non-default options builds an encoder on every call."""


def canonical_json(value: Any) -> str:
    """One spelling per value, so both sides sign the same bytes."""
    return _CANONICAL.encode(value)


def json_schema() -> dict[str, Any]:
    """The whole contract as one JSON Schema document (`opik-connect protocol schema`)."""
    models: dict[str, type[BaseModel]] = {"Frame": Frame, "ErrorBody": ErrorBody}
    for name, (args, result) in COMMANDS.items():
        models[f"{name}Args"] = args
        models[f"{name}Result"] = result
    models.update(EVENTS)
    for model in (
        PairRequest,
        PairPending,
        Paired,
        ConfirmPairing,
        PairingConfirmed,
        Hello,
        Welcome,
        Ack,
        FrameError,
        AskRequest,
        AskEvent,
    ):
        models[model.__name__] = model
    defs: dict[str, Any] = {}
    for name, model in models.items():
        schema = TypeAdapter(model).json_schema(ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        defs[name] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "opik-connect wire protocol",
        "version": PROTOCOL_VERSION,
        "commands": {name: {"args": f"{name}Args", "result": f"{name}Result"} for name in COMMANDS},
        "events": sorted(EVENTS),
        "error_codes": [code.value for code in ErrorCode],
        "close_codes": {
            "frame_too_large": CLOSE_FRAME_TOO_LARGE,
            "auth_failed": CLOSE_AUTH_FAILED,
            "protocol_version": CLOSE_PROTOCOL_VERSION,
        },
        "$defs": defs,
    }
