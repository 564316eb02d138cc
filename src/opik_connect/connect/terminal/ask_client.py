"""The client side of the platform's HTTP API: find the platform, ask, follow, read.

Used by `opik-connect ask` in another terminal and by the daemon's `ollie>` prompt, so both show
the same stream. The token is only ever sent where the link itself would go: wss://, or ws:// to
loopback.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ValidationError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from opik_connect.agent.platform.run_file import SERVER_RUN_FILE_NAME, find_run_file
from opik_connect.connect.platform_url import LinkError, check_url_policy
from opik_connect.protocol import MAX_FRAME_BYTES, AskEvent, AskRequest

PLATFORM_URL_ENV = "OPIK_CONNECT_PLATFORM"
PLATFORM_TOKEN_ENV = "OPIK_CONNECT_TOKEN"


class AskError(Exception):
    """The platform cannot be found, reached or authenticated to; the message says what to do."""


class PlatformAddress(BaseModel):
    url: str
    token: str
    insecure: bool = False

    def websocket_url(self, path: str) -> str:
        return self.url.rstrip("/") + path

    def http_url(self, path: str) -> str:
        parts = urlsplit(self.url)
        scheme = "https" if parts.scheme == "wss" else "http"
        return urlunsplit((scheme, parts.netloc, path, "", ""))

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def locate_platform(
    url: str | None = None,
    token: str | None = None,
    *,
    root: Path | None = None,
    insecure: bool = False,
) -> PlatformAddress:
    """Flags, then the environment, then the run file of a running `opik-connect`."""
    url = url or os.environ.get(PLATFORM_URL_ENV)
    token = token or os.environ.get(PLATFORM_TOKEN_ENV)
    if url and token:
        return PlatformAddress(url=url, token=token, insecure=insecure)
    found = find_run_file(root)
    if found is not None and (url is None or url == found.url):
        return PlatformAddress(url=found.url, token=token or found.token, insecure=insecure)
    if url:
        raise AskError(
            f"no token for {url}: pass --token or set {PLATFORM_TOKEN_ENV} "
            f"(`opik-connect platform` writes it to {SERVER_RUN_FILE_NAME} in its state dir)"
        )
    raise AskError(
        "no running platform found: start `opik-connect` in your project (it runs one), "
        f"or pass --platform URL --token TOKEN (or set {PLATFORM_URL_ENV} and {PLATFORM_TOKEN_ENV})"
    )


async def ask_stream(address: PlatformAddress, request: AskRequest) -> AsyncIterator[AskEvent]:
    """Every event of a new session, ending with its 'result' (or an 'error' event)."""
    async for event in _stream(address, "/v1/ask", request.model_dump_json()):
        yield event


async def follow_stream(address: PlatformAddress, session_id: str) -> AsyncIterator[AskEvent]:
    """Every event of a running or recent session, from its start."""
    async for event in _stream(address, f"/v1/sessions/{session_id}/stream", None):
        yield event


async def _stream(
    address: PlatformAddress, path: str, first_message: str | None
) -> AsyncIterator[AskEvent]:
    url = address.websocket_url(path)
    try:
        ssl_context = check_url_policy(url, address.insecure)
    except LinkError as exc:
        raise AskError(str(exc)) from exc
    try:
        async with connect(
            url,
            additional_headers=address.headers,
            ssl=ssl_context,
            max_size=MAX_FRAME_BYTES,
            open_timeout=10,
        ) as ws:
            if first_message is not None:
                await ws.send(first_message)
            async for message in ws:
                try:
                    yield AskEvent.model_validate_json(message)
                except ValidationError as exc:
                    raise AskError(f"the platform sent something not an event: {exc}") from exc
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status == 401:
            raise AskError(f"the platform at {address.url} refused the token (401)") from exc
        raise AskError(f"the platform at {address.url} answered HTTP {status}") from exc
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        raise AskError(f"cannot reach the platform at {address.url}: {exc}") from exc
    except ConnectionClosed as exc:
        raise AskError(f"the platform closed the connection before the result: {exc}") from exc


async def read_json(address: PlatformAddress, path: str, **params: Any) -> Any:
    """GET one of the read endpoints (e.g. '/v1/sessions/ID') and return its JSON."""
    import httpx  # here, not at the top: httpx costs ~0.1 s, which the daemon's start-up skips

    query = {key: value for key, value in params.items() if value is not None}
    try:
        async with httpx.AsyncClient(timeout=10, verify=not address.insecure) as client:
            response = await client.get(
                address.http_url(path), params=query, headers=address.headers
            )
    except httpx.HTTPError as exc:
        raise AskError(f"cannot reach the platform at {address.url}: {exc}") from exc
    if response.status_code == 401:
        raise AskError(f"the platform at {address.url} refused the token (401)")
    if response.status_code != 200:
        raise AskError(f"GET {path}: HTTP {response.status_code}: {response.text[:200]}")
    return response.json()
