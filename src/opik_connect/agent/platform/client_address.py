"""The address a connection comes from, seen through trusted reverse proxies (X-Forwarded-For).

Behind a TLS-terminating proxy every daemon's peer address is the proxy's, so the per-address
bound on waiting pairings would pool the whole team under one address. The header is believed
only from peers the operator named (`opik-connect platform --trusted-proxy IP`): anyone else could
write any address into it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from websockets.asyncio.server import ServerConnection

FORWARDED_FOR = "X-Forwarded-For"


def normalize_ip(text: str) -> str:
    """The canonical form of an IP address; ValueError if `text` is not one."""
    return ipaddress.ip_address(text.strip()).compressed


def trusted_set(addresses: Iterable[str]) -> frozenset[str]:
    return frozenset(normalize_ip(address) for address in addresses)


def client_address(ws: ServerConnection, trusted_proxies: frozenset[str]) -> str:
    """The peer's address; from a trusted proxy, the nearest untrusted hop it forwarded for."""
    peer = str(ws.remote_address[0]) if ws.remote_address else "?"
    if peer not in trusted_proxies or ws.request is None:
        return peer
    hops = [hop for value in ws.request.headers.get_all(FORWARDED_FOR) for hop in value.split(",")]
    for hop in reversed(hops):
        try:
            address = normalize_ip(hop)
        except ValueError:
            return peer  # a hop we cannot read: believe nothing beyond our proxy
        if address not in trusted_proxies:
            return address
    return peer
