"""Which platform URLs a daemon dials, and how: certificate checks, loopback-only ws://, and
compression only off this machine."""

from __future__ import annotations

import ipaddress
import ssl
from urllib.parse import urlsplit


class LinkError(Exception):
    """The link cannot be used as configured (bad URL policy); retrying will not help."""


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url_policy(url: str, insecure: bool) -> ssl.SSLContext | None:
    """wss:// verifies certificates; ws:// only to loopback unless insecure was asked for."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what rejects 'ws://host:abc'
    except ValueError as exc:
        raise LinkError(f"not a valid platform URL {url!r}: {exc}") from None
    if parts.scheme in ("ws", "wss") and not parts.hostname:
        raise LinkError(f"platform URL {url!r} names no host")
    if parts.scheme == "wss":
        if insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context()
    if parts.scheme == "ws":
        if not is_loopback_host(parts.hostname or "") and not insecure:
            raise LinkError(f"refusing ws:// to non-loopback host {parts.hostname!r}; use wss://")
        return None
    raise LinkError(f"platform URL must be ws:// or wss://, got {url!r}")


def link_compression(url: str) -> str | None:
    """permessage-deflate only when the platform is off this machine: on loopback bandwidth is
    free, and deflating both ways costs more time (~70 us per 4 KiB round trip) than it saves."""
    return None if is_loopback_host(urlsplit(url).hostname or "") else "deflate"
