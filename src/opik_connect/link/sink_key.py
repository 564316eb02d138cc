"""Runner keys for the platform's trace sink, minted from the pairing's link key by either side.

A key names its runner and its expiry and carries an HMAC of both under the runner's link key.
The platform issues one in each Welcome; a daemon whose connection outlives it mints the next
one itself, since it holds the same link key. The platform refuses keys that claim to live
longer than one TTL, so a leaked key still dies within a day.

    ocsk1.<expires_at>.<mac>.<runner_id>
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from opik_connect.protocol import TraceSinkGrant

KEY_PREFIX = "ocsk1"
KEY_TTL_S = 24 * 3600
KEY_RENEW_S = 3600
"""A daemon mints a fresh key once its current one has less than this left."""


def sink_key_mac(link_key: bytes, runner_id: str, expires_at: int) -> str:
    message = f"opik-connect trace sink|{runner_id}|{expires_at}".encode()
    digest = hmac.new(link_key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue_sink_key(runner_id: str, link_key: bytes, expires_at: int) -> str:
    return f"{KEY_PREFIX}.{expires_at}.{sink_key_mac(link_key, runner_id, expires_at)}.{runner_id}"


def fresh_grant(
    grant: TraceSinkGrant, runner_id: str, link_key: bytes, platform_now: float
) -> TraceSinkGrant:
    """The grant as is while its key has KEY_RENEW_S left; else the same sink with a new key."""
    if grant.expires_at - platform_now > KEY_RENEW_S:
        return grant
    expires_at = int(platform_now) + KEY_TTL_S
    key = issue_sink_key(runner_id, link_key, expires_at)
    return grant.model_copy(update={"key": key, "expires_at": expires_at})
