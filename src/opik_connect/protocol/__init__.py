"""The wire contract between the daemon (connect/) and the platform (agent/).

Both sides import this package and nothing else defines a message, so the two can never drift.
Read commands keep the names, arguments, result fields and error codes of Opik's own bridge.
"""

from opik_connect.protocol.ask import AskEvent, AskRequest
from opik_connect.protocol.catalogue import COMMANDS, EVENTS, json_schema
from opik_connect.protocol.codes import (
    CLOSE_AUTH_FAILED,
    CLOSE_FRAME_TOO_LARGE,
    CLOSE_PROTOCOL_VERSION,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    BridgeError,
    ErrorBody,
    ErrorCode,
    Strict,
)
from opik_connect.protocol.envelope import Frame, FrameKind, canonical_json
from opik_connect.protocol.events import (
    FileChange,
    FilesChanged,
    Heartbeat,
    ProposalDecided,
    RootSummary,
    SuiteResult,
)
from opik_connect.protocol.handshake import (
    Ack,
    CommandResult,
    ConfirmPairing,
    FrameError,
    Hello,
    Paired,
    PairingConfirmed,
    PairPending,
    PairRequest,
    Welcome,
)
from opik_connect.protocol.proposals import (
    FileEdit,
    FileStat,
    ProposeChangeArgs,
    ProposeChangeResult,
)
from opik_connect.protocol.reads import (
    ListFilesArgs,
    ListFilesResult,
    ReadFileArgs,
    ReadFileResult,
    SearchFilesArgs,
    SearchFilesResult,
    SearchMatch,
)
from opik_connect.protocol.suites import (
    AssertionStatus,
    AssertionVerdict,
    ItemChange,
    ItemResult,
    RunOutcome,
    RunStatus,
    RunSuiteArgs,
    SuiteRunSummary,
    Verification,
    VerificationStatus,
)

__all__ = [
    "CLOSE_AUTH_FAILED",
    "CLOSE_FRAME_TOO_LARGE",
    "CLOSE_PROTOCOL_VERSION",
    "COMMANDS",
    "EVENTS",
    "MAX_FRAME_BYTES",
    "PROTOCOL_VERSION",
    "Ack",
    "AskEvent",
    "AskRequest",
    "AssertionStatus",
    "AssertionVerdict",
    "BridgeError",
    "CommandResult",
    "ConfirmPairing",
    "ErrorBody",
    "ErrorCode",
    "FileChange",
    "FileEdit",
    "FileStat",
    "FilesChanged",
    "Frame",
    "FrameError",
    "FrameKind",
    "Heartbeat",
    "Hello",
    "ItemChange",
    "ItemResult",
    "ListFilesArgs",
    "ListFilesResult",
    "PairPending",
    "PairRequest",
    "Paired",
    "PairingConfirmed",
    "ProposalDecided",
    "ProposeChangeArgs",
    "ProposeChangeResult",
    "ReadFileArgs",
    "ReadFileResult",
    "RootSummary",
    "RunOutcome",
    "RunStatus",
    "RunSuiteArgs",
    "SearchFilesArgs",
    "SearchFilesResult",
    "SearchMatch",
    "Strict",
    "SuiteResult",
    "SuiteRunSummary",
    "Verification",
    "VerificationStatus",
    "Welcome",
    "canonical_json",
    "json_schema",
]
