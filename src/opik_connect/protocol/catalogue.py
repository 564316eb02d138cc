"""Every command and event by wire name, and the whole contract as one JSON Schema document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from opik_connect.protocol.ask import AskEvent, AskRequest
from opik_connect.protocol.codes import (
    CLOSE_AUTH_FAILED,
    CLOSE_DRAINING,
    CLOSE_FRAME_TOO_LARGE,
    CLOSE_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    ErrorBody,
    ErrorCode,
)
from opik_connect.protocol.envelope import Frame
from opik_connect.protocol.events import FilesChanged, Heartbeat, ProposalDecided, SuiteResult
from opik_connect.protocol.handshake import (
    Ack,
    ConfirmPairing,
    FrameError,
    Hello,
    Paired,
    PairingConfirmed,
    PairPending,
    PairRequest,
    Welcome,
)
from opik_connect.protocol.proposals import ProposeChangeArgs, ProposeChangeResult
from opik_connect.protocol.reads import (
    ListFilesArgs,
    ListFilesResult,
    ReadFileArgs,
    ReadFileResult,
    SearchFilesArgs,
    SearchFilesResult,
)
from opik_connect.protocol.suites import RunSuiteArgs, SuiteRunSummary

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
            "draining": CLOSE_DRAINING,
        },
        "$defs": defs,
    }
