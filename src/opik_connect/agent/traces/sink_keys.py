"""The sink's check of a runner key (see link.sink_key for how one is minted) and of the operator
token. The platform keeps no table of keys: it recomputes the MAC from the pairing it already
holds, so unpairing a runner revokes its keys. A key never grants more than writes of traces,
spans and feedback scores (sink_http checks the route).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from opik_connect.link.sink_key import KEY_PREFIX, KEY_TTL_S, sink_key_mac

CLOCK_SLACK_S = 300
"""How far past one TTL from now a key's expiry may lie: the daemon mints on its own clock,
corrected by the Welcome's, so only the handshake's latency separates them."""

LinkKeys = Callable[[str], Awaitable[bytes | None]]
"""runner id -> its link key, None for a runner the platform has not paired (or unpaired).
Async: a replica asks the shared store, since the key may come from another replica's grant."""


def is_runner_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX + ".")


@dataclass(frozen=True)
class KeyCheck:
    """A presented runner key: whose it is, when it is refused, and why (said in the 401)."""

    runner_id: str | None
    problem: str | None = None


async def check_sink_key(value: str, link_keys: LinkKeys, now: float) -> KeyCheck:
    """The runner a valid key belongs to; else the reason it is refused."""
    parts = value.split(".", 3)
    if len(parts) != 4 or parts[0] != KEY_PREFIX or not parts[1].isdigit():
        return KeyCheck(None, "not a sink key")
    _, expires, mac, runner_id = parts
    link_key = await link_keys(runner_id)
    expected = sink_key_mac(link_key, runner_id, int(expires)) if link_key is not None else ""
    if link_key is None or not hmac.compare_digest(mac.encode(), expected.encode()):
        return KeyCheck(None, "wrong sink key (or its runner is no longer paired)")
    if int(expires) <= now:
        return KeyCheck(None, "sink key expired")
    if int(expires) > now + KEY_TTL_S + CLOCK_SLACK_S:
        return KeyCheck(None, "sink key claims to live longer than a day")
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

    async def caller(self, headers: dict[str, str]) -> Caller:
        value = headers.get("authorization", "").strip()
        scheme, _, rest = value.partition(" ")
        presented = rest.strip() if scheme.lower() == "bearer" else value
        if presented and hmac.compare_digest(presented.encode(), self._token):
            return Caller(operator=True)
        if self._runner_keys is None or not is_runner_key(presented):
            return Caller()
        check = await check_sink_key(presented, self._runner_keys, self._clock())
        if check.runner_id is None:
            return Caller(problem=check.problem or "wrong sink key")
        return Caller(runner_id=check.runner_id)
