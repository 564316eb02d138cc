"""HTTP replies the platform's port shares: JSON bodies, the bearer check, the 401."""

from __future__ import annotations

import hmac
import json
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Response

from opik_connect.protocol import ErrorCode


def json_response(connection: ServerConnection, status: int, body: Any) -> Response:
    response = connection.respond(status, json.dumps(body, ensure_ascii=False, default=str))
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    return response


def bearer_authorized(headers: Headers, token: bytes) -> bool:
    """Constant-time compare, so the token cannot be guessed byte by byte from timings."""
    value = headers.get("Authorization", "")
    scheme, _, presented = value.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return False
    return hmac.compare_digest(presented.strip().encode(), token)


def unauthorized(connection: ServerConnection) -> Response:
    """401 with the scheme to use, and nothing about why."""
    response = json_response(
        connection,
        HTTPStatus.UNAUTHORIZED,
        error_body(ErrorCode.AUTH_FAILED, "missing or wrong bearer token"),
    )
    response.headers["WWW-Authenticate"] = 'Bearer realm="opik-connect"'
    return response


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
