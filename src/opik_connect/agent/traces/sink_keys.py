"""Runner keys for the trace sink: what a paired daemon's suite workers send as their API key.

A key names its runner and its expiry and carries an HMAC of both under the runner's link key
(the secret its pairing established), so the platform keeps no table of keys: it recomputes the
MAC from the pairing it already holds. Unpairing a runner revokes its keys; a key never grants
more than writes of traces, spans and feedback scores (sink_http checks the route).

    ocsk1.<expires_at>.<mac>.<runner_id>
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

KEY_PREFIX = "ocsk1"
KEY_TTL_S = 24 * 3600
"""A Welcome brings a fresh key; one connection lasting longer than this logs no more traces
until the daemon reconnects."""

LinkKeys = Callable[[str], bytes | None]
"""runner id -> its link key, None for a runner the platform has not paired (or unpaired)."""


def _mac(link_key: bytes, runner_id: str, expires_at: int) -> str:
    message = f"opik-connect trace sink|{runner_id}|{expires_at}".encode()
    digest = hmac.new(link_key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue_sink_key(runner_id: str, link_key: bytes, expires_at: int) -> str:
    return f"{KEY_PREFIX}.{expires_at}.{_mac(link_key, runner_id, expires_at)}.{runner_id}"


def is_runner_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX + ".")


@dataclass(frozen=True)
class KeyCheck:
    """A presented runner key: whose it is, when it is refused, and why (said in the 401)."""

    runner_id: str | None
    problem: str | None = None


def check_sink_key(value: str, link_keys: LinkKeys, now: float) -> KeyCheck:
    """The runner a valid key belongs to; else the reason it is refused."""
    parts = value.split(".", 3)
    if len(parts) != 4 or parts[0] != KEY_PREFIX or not parts[1].isdigit():
        return KeyCheck(None, "not a sink key")
    _, expires, mac, runner_id = parts
    link_key = link_keys(runner_id)
    expected = _mac(link_key, runner_id, int(expires)) if link_key is not None else ""
    if link_key is None or not hmac.compare_digest(mac.encode(), expected.encode()):
        return KeyCheck(None, "wrong sink key (or its runner is no longer paired)")
    if int(expires) <= now:
        return KeyCheck(None, "sink key expired: the daemon gets a new one when it reconnects")
    return KeyCheck(runner_id)


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the operator (the platform's token), a runner (its sink key), or
    nobody, with the reason the 401 gives."""

    operator: bool = False
    runner_id: str | None = None
    problem: str = "missing or wrong API key"


class SinkAuth:
    """Tells the callers of the sink apart from the Authorization header: the key bare, as the
    SDK sends it, or after `Bearer`. Constant-time compares."""

    def __init__(
        self, token: str, runner_keys: LinkKeys | None, clock: Callable[[], float] = time.time
    ) -> None:
        self._token = token.encode()
        self._runner_keys = runner_keys
        self._clock = clock

    def caller(self, headers: dict[str, str]) -> Caller:
        value = headers.get("authorization", "").strip()
        scheme, _, rest = value.partition(" ")
        presented = rest.strip() if scheme.lower() == "bearer" else value
        if presented and hmac.compare_digest(presented.encode(), self._token):
            return Caller(operator=True)
        if self._runner_keys is None or not is_runner_key(presented):
            return Caller()
        check = check_sink_key(presented, self._runner_keys, self._clock())
        if check.runner_id is None:
            return Caller(problem=check.problem or "wrong sink key")
        return Caller(runner_id=check.runner_id)
