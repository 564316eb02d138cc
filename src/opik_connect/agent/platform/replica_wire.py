"""What replicas say to each other over PostgreSQL NOTIFY: commands, results, presence, events,
and that a session event was stored (its followers on any replica read it from the store).

A message over NOTIFY's payload limit (8000 bytes) is written to replica_payloads in the same
statement, and the NOTIFY carries only its row id (a `ref`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from opik_connect.agent.platform.runner_handle import RunnerInfo
from opik_connect.protocol import CommandResult, PairingConfirmed

BROADCAST_CHANNEL = "opik_replicas"
NOTIFY_LIMIT_BYTES = 7900
"""Under PostgreSQL's 8000-byte NOTIFY payload limit, with room for the channel name."""
APPLICATION_PREFIX = "opik-connect-replica "
"""A replica's listening connection is named this plus its id: alive while PostgreSQL lists it."""
POOL_SUFFIX = " pool"
"""A replica's pooled connections are named its listening connection's name plus this: while
either is listed, the replica's process is alive (its sessions are not lost)."""


def replica_channel(replica_id: str) -> str:
    """The channel a replica listens on for commands and results addressed to it."""
    return f"opik_replica_{replica_id}"


class CommandMessage(BaseModel):
    """Run this command on a runner connected to you; answer on `reply_to`'s channel."""

    k: Literal["cmd"] = "cmd"
    id: str
    reply_to: str
    runner_id: str
    type: str
    payload: dict[str, Any]
    timeout_s: float


class ResultMessage(BaseModel):
    k: Literal["res"] = "res"
    id: str
    outcome: CommandResult


class PresenceMessage(BaseModel):
    """A runner connected to `replica_id` (info set) or left it (info None)."""

    k: Literal["presence"] = "presence"
    runner_id: str
    replica_id: str
    info: RunnerInfo | None


class EventMessage(BaseModel):
    """A daemon event a replica admitted (a decision: the one replica that took it)."""

    k: Literal["event"] = "event"
    runner_id: str
    type: str
    event: dict[str, Any]
    origin: str


class ConfirmMessage(BaseModel):
    """An operator confirmed a code the asking replica has no pairing for: whoever has it."""

    k: Literal["confirm"] = "confirm"
    id: str
    reply_to: str
    code: str


class ConfirmedMessage(BaseModel):
    k: Literal["confirmed"] = "confirmed"
    id: str
    confirmed: PairingConfirmed


class SessionEventMessage(BaseModel):
    """Event `seq` of a session is in session_events: sent in the transaction that wrote it."""

    k: Literal["sevent"] = "sevent"
    session_id: str
    seq: int


class PayloadRef(BaseModel):
    """The message is row `id` of replica_payloads."""

    k: Literal["ref"] = "ref"
    id: int


ReplicaMessage = Annotated[
    CommandMessage
    | ResultMessage
    | PresenceMessage
    | EventMessage
    | ConfirmMessage
    | ConfirmedMessage
    | SessionEventMessage
    | PayloadRef,
    Field(discriminator="k"),
]
MESSAGES: TypeAdapter[ReplicaMessage] = TypeAdapter(ReplicaMessage)
