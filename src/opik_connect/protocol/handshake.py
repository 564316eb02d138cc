"""Pairing and the authenticated handshake, plus the acks, errors and results both sides send."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from opik_connect.protocol.codes import PROTOCOL_VERSION, ErrorBody, Strict
from opik_connect.protocol.events import RootSummary


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


class TraceSinkGrant(BaseModel):
    """Where this runner's suite workers may log traces on the platform, and the key they send
    as their API key: it writes traces, spans and feedback scores only, and expires. Fields a
    newer platform adds are ignored, as in Welcome."""

    port: int = Field(ge=1, le=65535, description="The sink's port, on the platform's host.")
    tls: bool = Field(False, description="https, with the platform's certificate.")
    key: str
    expires_at: float


def sink_base_url(platform_url: str, port: int, tls: bool) -> str | None:
    """The sink's base URL (the SDK's OPIK_URL_OVERRIDE) on the host a client reached the
    platform at, on the port the platform names for it (a proxy's, behind one). Over TLS when
    the sink serves it, or when the platform was reached over TLS (a proxy in front terminates
    TLS for the sink's port too), so a key never travels in clear text. None without a host."""
    parts = urlsplit(platform_url)
    host = parts.hostname
    if not host:
        return None
    host = f"[{host}]" if ":" in host else host
    scheme = "https" if tls or parts.scheme in ("wss", "https") else "http"
    return f"{scheme}://{host}:{port}/api"


class TraceSinkAddress(BaseModel):
    """`GET /v1/traces/sink`: the sink's own URL, and the port (a proxy's, behind one) and TLS
    that a client reaching the platform's host logs to, as daemons are granted them."""

    url: str | None = Field(description="The sink's own base URL; None when it runs no sink.")
    port: int | None = None
    tls: bool = False

    def base_url(self, platform_url: str) -> str | None:
        """The base URL for a client that reached the platform at `platform_url`: None without
        a host there, as for a daemon's grant (`url` is the sink's own address, on its bind host
        and inner port, which a proxy's TLS does not cover). `url` itself from a platform that
        names no port (it predates the port), as such a platform's clients used it."""
        if self.url is None or self.port is None:
            return self.url
        return sink_base_url(platform_url, self.port, self.tls)


class Welcome(BaseModel):
    """Platform -> daemon: the connection is authenticated; nonce completes the connection id.

    Not Strict: it only tells the daemon things, so a field added by a newer platform is
    ignored rather than refused, and a platform upgraded before its daemons keeps them."""

    nonce: str
    heartbeat_interval_s: float = 10.0
    trace_sink: TraceSinkGrant | None = None


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
