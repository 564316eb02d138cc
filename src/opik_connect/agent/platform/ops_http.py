"""Operations endpoints on the platform's port: /healthz, /readyz and /metrics.

- `/healthz`: 200 while the process answers at all. No token: a load balancer or an orchestrator
  probes it, and the body is `{"status": "ok"}` and nothing else.
- `/readyz`: 200 `{"status": "ready"}` when the platform takes new work; 503 with `draining` or
  `unavailable` (a readiness check, such as reaching the store, failed or took over
  READY_CHECK_TIMEOUT_S). No token either: the body is one status word, the failure's detail goes
  to the log only.
- `/metrics`: Prometheus text, behind the same bearer token as /v1/: it counts runners, sessions
  and spend and names models, which is more than an unauthenticated caller should learn.
  A scraper that cannot send a token gets `MetricsListener`, a second listener on a loopback port
  (`opik-connect platform --metrics-port`) that serves /metrics only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Protocol
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from opik_connect.agent.platform.http_replies import (
    bearer_authorized,
    error_body,
    json_response,
    unauthorized,
)
from opik_connect.agent.platform.log_context import REQUEST_ID, request_id

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
PROBE_PATHS = frozenset({HEALTH_PATH, READY_PATH})
READY_CHECK_TIMEOUT_S = 2.0
DRAINING = {"status": "draining"}

ReadyCheck = Callable[[], Awaitable[object]]
"""Raises (or hangs) when the platform cannot take work, e.g. a query on the store."""
MetricsRender = Callable[[], tuple[bytes, str]]
"""The exposition body and its Content-Type."""


class RequestHook(Protocol):
    """The HTTP API's hook (agent/platform/http_api.py), asked after the ops endpoints."""

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None: ...


def metrics_response(connection: ServerConnection, render: MetricsRender) -> Response:
    body, content_type = render()
    response = connection.respond(HTTPStatus.OK, "")
    response.body = body
    del response.headers["Content-Length"]
    del response.headers["Content-Type"]
    response.headers["Content-Length"] = str(len(body))
    response.headers["Content-Type"] = content_type
    return response


class OpsEndpoints:
    """Answers the three paths (None for any other); the platform asks it before anything else."""

    def __init__(self, *, token: str, is_draining: Callable[[], bool]) -> None:
        self._token = token.encode()
        self._is_draining = is_draining
        self.ready_checks: list[ReadyCheck] = []
        self.metrics: MetricsRender | None = None
        """Set by whoever keeps the metrics (agent/platform/metrics.py); else /metrics is 404."""

    async def front_door(
        self, connection: ServerConnection, request: Request, api: RequestHook | None
    ) -> Response | None:
        """Every request on the platform's port: an id (kept for the connection's task, so its
        handler and the sessions it starts log it), these endpoints, then unless draining `api`.
        None lets the websocket handshake go on."""
        rid = request_id(request.headers.get("X-Request-ID"))
        REQUEST_ID.set(rid)
        response = await self.process_request(connection, request)
        if response is None and self._is_draining() and "Upgrade" in request.headers:
            response = json_response(connection, HTTPStatus.SERVICE_UNAVAILABLE, DRAINING)
            response.headers["Retry-After"] = "1"
        if response is None and api is not None:
            response = await api.process_request(connection, request)
        if response is not None:
            response.headers["X-Request-ID"] = rid
            path = urlsplit(request.path).path
            level = logging.DEBUG if path in PROBE_PATHS else logging.INFO
            log.log(level, "GET %s %d", path, response.status_code, extra={"path": path})
        return response

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = urlsplit(request.path).path
        if path == HEALTH_PATH:
            return json_response(connection, HTTPStatus.OK, {"status": "ok"})
        if path == READY_PATH:
            status = await self.readiness()
            code = HTTPStatus.OK if status == "ready" else HTTPStatus.SERVICE_UNAVAILABLE
            return json_response(connection, code, {"status": status})
        if path != METRICS_PATH:
            return None
        if not bearer_authorized(request.headers, self._token):
            return unauthorized(connection)
        if self.metrics is None:
            body = error_body("not_found", "this platform keeps no metrics (the embedded one)")
            return json_response(connection, HTTPStatus.NOT_FOUND, body)
        return metrics_response(connection, self.metrics)

    async def readiness(self) -> str:
        """'ready', 'draining' or 'unavailable'."""
        if self._is_draining():
            return "draining"
        for check in self.ready_checks:
            try:
                async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
                    await check()
            except Exception:
                log.warning("readiness check failed", exc_info=True)
                return "unavailable"
        return "ready"


class MetricsListener:
    """/metrics without a token, on its own (loopback by default) port; every other path 404."""

    def __init__(self, render: MetricsRender, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._render = render
        self.host = host
        self.port = port
        self._server: Server | None = None

    async def start(self) -> None:
        self._server = await serve(
            self._refuse, self.host, self.port, process_request=self._process_request
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        if urlsplit(request.path).path == METRICS_PATH:
            return metrics_response(connection, self._render)
        body = error_body("not_found", "this port serves /metrics only")
        return json_response(connection, HTTPStatus.NOT_FOUND, body)

    async def _refuse(self, connection: ServerConnection) -> None:
        """Never reached: every request is answered before any websocket handshake."""
        await connection.close()
