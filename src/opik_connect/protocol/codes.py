"""Protocol version, frame limits, close and error codes, and the error every side raises."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 1 << 20
"""Frames over this size are refused with close code CLOSE_FRAME_TOO_LARGE."""

CLOSE_FRAME_TOO_LARGE = 1009
"""Websocket close code (RFC 6455 'message too big') for a frame over MAX_FRAME_BYTES."""
CLOSE_AUTH_FAILED = 4401
"""Close code for a handshake that cannot be authenticated (unknown runner, bad pairing)."""
CLOSE_PROTOCOL_VERSION = 4426
"""Close code for a peer speaking a protocol version we do not."""
CLOSE_DRAINING = 1012
"""Websocket close code (IANA 'service restart') when the platform drains: reconnect, perhaps
to another replica behind the same URL."""


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
    SEARCH_FAILED = "search_failed"
    """SearchFiles could not run the pattern (Opik's code for an invalid regex)."""
    # Frame-level problems.
    MALFORMED_FRAME = "malformed_frame"
    NOT_PAIRED = "not_paired"
    # Proposals (edit engine); also Opik's SearchFiles code for an empty or too long pattern.
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
