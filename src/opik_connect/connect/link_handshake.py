"""The daemon's side of the link handshake: pair with a platform, then say Hello."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection

from opik_connect.link.auth import (
    HANDSHAKE_TIMEOUT_S,
    FrameSigner,
    PairingRecord,
    connection_id,
    new_activation_key,
    new_nonce,
    sign_hello,
)
from opik_connect.link.frames import (
    carried_error,
    decode_frame,
    encode,
    encode_control,
    parse_model,
)
from opik_connect.protocol import (
    CLOSE_AUTH_FAILED,
    BridgeError,
    ErrorCode,
    Frame,
    Hello,
    Paired,
    PairPending,
    PairRequest,
    RootSummary,
    Welcome,
)


@dataclass(frozen=True)
class RunnerIdentity:
    runner_id: str
    name: str
    project: str


class HandshakeRefused(Exception):
    """The platform refused pairing or the Hello; the message says why."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.AUTH_FAILED) -> None:
        super().__init__(message)
        self.code = code

    @classmethod
    def from_frame(cls, frame: Frame) -> HandshakeRefused:
        error = carried_error(frame).error
        return cls(f"{error.code}: {error.message}", error.code)


async def pair(
    ws: ClientConnection, identity: RunnerIdentity, on_code: Callable[[str, float], None]
) -> PairingRecord:
    """Ask to pair and wait for the operator; on_code gets each code the platform shows."""
    activation_key = new_activation_key()
    request = PairRequest(
        runner_id=identity.runner_id,
        runner_name=identity.name,
        project=identity.project,
        activation_key=activation_key,
    )
    await ws.send(encode_control(uuid.uuid4().hex, request))
    while True:
        reply = decode_frame(await ws.recv())
        if reply.type == "PairPending":
            pending = parse_model(PairPending, reply.payload, ErrorCode.MALFORMED_FRAME)
            on_code(pending.code, pending.expires_at)
        elif reply.type == "Paired":
            paired = parse_model(Paired, reply.payload, ErrorCode.MALFORMED_FRAME)
            return PairingRecord(
                runner_id=identity.runner_id,
                activation_key=activation_key,
                session_id=paired.session_id,
                runner_name=identity.name,
                project=identity.project,
            )
        elif reply.kind == "error":
            raise HandshakeRefused.from_frame(reply)


async def hello(
    ws: ClientConnection, record: PairingRecord, identity: RunnerIdentity, root: RootSummary
) -> tuple[FrameSigner, Welcome]:
    """The signer of this connection, and the platform's Welcome (the heartbeat interval it
    asks for, the trace sink it grants)."""
    key = record.link_key()
    nonce = new_nonce()
    greeting = Hello(
        runner_id=record.runner_id,
        runner_name=identity.name,
        project=identity.project,
        root=root,
        nonce=nonce,
    )
    await ws.send(
        encode(sign_hello(key, nonce, uuid.uuid4().hex, greeting.model_dump(mode="json")))
    )
    async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
        reply = decode_frame(await ws.recv())
    if reply.kind == "error":
        raise HandshakeRefused.from_frame(reply)
    welcome = parse_model(Welcome, reply.payload, ErrorCode.MALFORMED_FRAME)
    signer = FrameSigner(key, connection_id(nonce, welcome.nonce))
    try:
        signer.verify(reply)
    except BridgeError as exc:
        await ws.close(CLOSE_AUTH_FAILED, "platform failed authentication")
        raise HandshakeRefused(f"platform's Welcome: {exc.message}") from exc
    return signer, welcome
