"""Where the daemon's suite runs log traces with no Opik server configured: the platform's sink."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from opik_connect.connect.suites.suite_tracing import TraceSink
from opik_connect.connect.terminal.ask_client import AskError, PlatformAddress, read_json

if TYPE_CHECKING:
    from opik_connect.connect.daemon import Daemon

SinkLookup = Callable[[], Awaitable[TraceSink | None]]


async def platform_trace_sink(daemon: Daemon) -> TraceSink | None:
    """The embedded platform's sink, as `GET /v1/traces/sink` names it; None without one.

    A remote platform's sink takes that platform's operator token, which the daemon does not
    hold (it has a runner pairing), so runs against a remote platform keep tracking off."""
    platform = daemon.platform
    if platform is None:
        return None
    address = PlatformAddress(url=platform.url, token=platform.operator_token)
    try:
        body = await read_json(address, "/v1/traces/sink")
    except AskError:
        return None
    url = body.get("url") if isinstance(body, dict) else None
    return TraceSink(str(url), platform.operator_token) if url else None


def sink_lookup(daemon: Daemon) -> SinkLookup:
    """Looked up per run: the platform may start its sink after the daemon's parts."""

    async def lookup() -> TraceSink | None:
        return await platform_trace_sink(daemon)

    return lookup
