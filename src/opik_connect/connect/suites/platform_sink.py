"""Where the daemon's suite runs log traces with no Opik server configured: the platform's sink."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from opik_connect.connect.suites.suite_tracing import TraceSink
from opik_connect.connect.terminal.ask_client import AskError, PlatformAddress, read_json
from opik_connect.protocol import TraceSinkGrant, sink_base_url

if TYPE_CHECKING:
    from opik_connect.connect.daemon import Daemon

SinkLookup = Callable[[], Awaitable[TraceSink | None]]


def granted_sink(
    platform_url: str, grant: TraceSinkGrant | None, *, verify_tls: bool = True
) -> TraceSink | None:
    """The sink a remote platform granted in its Welcome: its port on the host the daemon dialed,
    with the runner's sink key (writes only), its certificate checked as the link's was. None
    without a grant. Over TLS when the grant says so, or when the link itself is (wss://: a proxy
    in front of the platform terminates TLS for the sink's port too), so a key never travels in
    clear text."""
    if grant is None:
        return None
    url = sink_base_url(platform_url, grant.port, grant.tls)
    return None if url is None else TraceSink(url, grant.key, verify_tls)


async def platform_trace_sink(daemon: Daemon) -> TraceSink | None:
    """The embedded platform's sink, as `GET /v1/traces/sink` names it, with the platform's
    token; for a remote platform, the sink and runner key its Welcome granted. None without one."""
    platform = daemon.platform
    if platform is None:
        link = daemon.link
        if link is None:
            return None
        return granted_sink(link.url, link.trace_sink(), verify_tls=link.verifies_tls)
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
