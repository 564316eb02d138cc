"""The platform's side of the link handshake: PairRequest, ConfirmPairing or Hello.

Frames are unsigned until Hello; whatever cannot be answered closes the connection with a named
close code.
"""

from __future__ import annotations

import asyncio
import hmac
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from opik_connect.agent.platform.client_address import client_address
from opik_connect.agent.platform.pairing import PairingDesk, PendingPairing
from opik_connect.link.auth import (
    HANDSHAKE_TIMEOUT_S,
    FrameSigner,
    check_signature,
    connection_id,
    decode_activation_key,
    hello_connection_id,
    new_nonce,
)
from opik_connect.link.caches import BoundedIds
from opik_connect.link.frames import decode_frame, encode, encode_control, parse_model
from opik_connect.link.platform_session import SEEN_CACHE_SIZE
from opik_connect.protocol import (
    CLOSE_AUTH_FAILED,
    CLOSE_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    BridgeError,
    ConfirmPairing,
    ErrorCode,
    Frame,
    FrameError,
    Hello,
    Paired,
    PairPending,
    PairRequest,
    TraceSinkGrant,
    Welcome,
)

SinkGrants = Callable[[str, bytes], TraceSinkGrant | None]
"""(runner id, its link key) -> where and with what key its suite workers log traces."""

CLOSE_TRY_AGAIN_LATER = 1013
"""RFC 6455 'try again later': too many pairings are waiting for an operator."""


@dataclass(frozen=True)
class Accepted:
    """An authenticated daemon: its Hello, and the signer of this connection."""

    hello: Hello
    signer: FrameSigner


class Handshake:
    """Answers bad frames until a PairRequest, ConfirmPairing or Hello arrives."""

    def __init__(
        self,
        desk: PairingDesk,
        *,
        operator_token: str,
        heartbeat_interval_s: float,
        on_pair_request: Callable[[PairRequest], None] | None = None,
    ) -> None:
        self.desk = desk
        self.operator_token = operator_token
        self._heartbeat_interval_s = heartbeat_interval_s
        self._on_pair_request = on_pair_request
        self._seen_hello_nonces = BoundedIds(SEEN_CACHE_SIZE)
        self.trusted_proxies: frozenset[str] = frozenset()
        """Peers whose X-Forwarded-For names a pairing's source (see client_address.py)."""
        self.sink_grants: SinkGrants | None = None
        """Set by the services that run a trace sink; each Welcome then carries a grant."""

    async def accept(self, ws: ServerConnection) -> Accepted | None:
        """The authenticated daemon, with its Welcome sent; None if the connection is done."""
        while True:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                message = await ws.recv()
            try:
                frame = decode_frame(message)
            except BridgeError as exc:
                await reply_error(ws, exc, None)
                continue
            if frame.type == "PairRequest":
                if not await self._pair(ws, frame):
                    return None
            elif frame.type == "ConfirmPairing":
                await self._operator_confirm(ws, frame)
                return None
            elif frame.type == "Hello":
                return await self._hello(ws, frame)
            else:
                exc = BridgeError(ErrorCode.NOT_PAIRED, f"{frame.type} before Hello")
                await reply_error(ws, exc, frame.id)

    async def _pair(self, ws: ServerConnection, frame: Frame) -> bool:
        """Hold the connection until the operator confirms the code; False if it expired or
        gave way to newer requests."""
        try:
            request = parse_model(PairRequest, frame.payload, ErrorCode.MALFORMED_FRAME)
            decode_activation_key(request.activation_key)
        except BridgeError as exc:
            await reply_error(ws, exc, frame.id)
            return True
        source = client_address(ws, self.trusted_proxies)
        try:
            pending = self.desk.open(request, source, time.time())
        except BridgeError as exc:
            await refuse(ws, exc, frame.id, CLOSE_TRY_AGAIN_LATER)
            return False
        try:
            return await self._wait_confirmed(ws, frame, request, pending)
        finally:
            self.desk.close(pending)

    async def _wait_confirmed(
        self, ws: ServerConnection, frame: Frame, request: PairRequest, pending: PendingPairing
    ) -> bool:
        reply = PairPending(code=pending.code, expires_at=pending.expires_at)
        await ws.send(encode_control(frame.id, reply))
        if self._on_pair_request is not None:
            self._on_pair_request(request)
        closed = asyncio.ensure_future(ws.wait_closed())
        try:
            # Give up as soon as the daemon goes away, so stop() never waits on an operator.
            await asyncio.wait(
                {pending.confirmed, closed},
                timeout=self.desk.ttl_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            closed.cancel()
        if pending.confirmed.done() and pending.confirmed.exception() is not None:
            error = pending.confirmed.exception()
            assert isinstance(error, BridgeError)
            if ws.state is State.OPEN:
                await refuse(ws, error, frame.id, CLOSE_TRY_AGAIN_LATER)
            return False
        if not pending.confirmed.done():
            if ws.state is State.OPEN:
                exc = BridgeError(ErrorCode.NOT_PAIRED, "pairing code expired")
                await refuse(ws, exc, frame.id, CLOSE_AUTH_FAILED)
            return False
        await self.desk.settled()
        await ws.send(encode_control(frame.id, Paired(session_id=pending.confirmed.result())))
        return True

    async def _operator_confirm(self, ws: ServerConnection, frame: Frame) -> None:
        try:
            confirm = parse_model(ConfirmPairing, frame.payload, ErrorCode.MALFORMED_FRAME)
            if not hmac.compare_digest(confirm.token, self.operator_token):
                raise BridgeError(ErrorCode.AUTH_FAILED, "operator token does not match")
            confirmed = await self.desk.confirm_anywhere(confirm.code, time.time())
        except BridgeError as exc:
            await refuse(ws, exc, frame.id, CLOSE_AUTH_FAILED)
            return
        await ws.send(encode_control(frame.id, confirmed))
        await ws.close()

    async def _hello(self, ws: ServerConnection, frame: Frame) -> Accepted | None:
        try:
            hello = parse_model(Hello, frame.payload, ErrorCode.MALFORMED_FRAME)
        except BridgeError as exc:
            await refuse(ws, exc, frame.id, CLOSE_AUTH_FAILED)
            return None
        if hello.protocol_version != PROTOCOL_VERSION:
            exc = BridgeError(
                ErrorCode.MALFORMED_FRAME,
                f"protocol version {hello.protocol_version} not supported "
                f"(this platform speaks {PROTOCOL_VERSION})",
            )
            await refuse(ws, exc, frame.id, CLOSE_PROTOCOL_VERSION)
            return None
        record = await self.desk.lookup(hello.runner_id)
        try:
            if record is None:
                raise BridgeError(ErrorCode.AUTH_FAILED, "unknown runner: pair first")
            key = record.link_key()
            check_signature(key, hello_connection_id(hello.nonce), frame)
            if frame.seq != 0 or hello.nonce in self._seen_hello_nonces:
                raise BridgeError(ErrorCode.AUTH_FAILED, "replayed Hello")
        except BridgeError as exc:
            await refuse(ws, exc, frame.id, CLOSE_AUTH_FAILED)
            return None
        self._seen_hello_nonces.add(hello.nonce)
        platform_nonce = new_nonce()
        signer = FrameSigner(key, connection_id(hello.nonce, platform_nonce))
        grant = self.sink_grants(hello.runner_id, key) if self.sink_grants else None
        welcome = Welcome(
            nonce=platform_nonce,
            heartbeat_interval_s=self._heartbeat_interval_s,
            trace_sink=grant,
        )
        await ws.send(
            signer.seal_text("control", "Welcome", uuid.uuid4().hex, welcome.model_dump())
        )
        return Accepted(hello, signer)


async def reply_error(ws: ServerConnection, exc: BridgeError, ref: str | None) -> None:
    """An unsigned FrameError: before Hello there is no key to sign with."""
    frame = Frame(
        kind="error",
        type="FrameError",
        id=uuid.uuid4().hex,
        payload=FrameError(error=exc.to_body(), ref=ref).model_dump(mode="json"),
    )
    await ws.send(encode(frame))


async def refuse(ws: ServerConnection, exc: BridgeError, ref: str | None, code: int) -> None:
    await reply_error(ws, exc, ref)
    await ws.close(code, exc.message[:120])
