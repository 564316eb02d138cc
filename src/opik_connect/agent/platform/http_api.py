"""The platform's HTTP API, on the same port as the daemons' websocket: reading and asking.

Reads are plain `GET /v1/...` answered with JSON from websockets' `process_request` hook, before
any websocket handshake. Asking is a websocket on /v1/ask, because websockets' HTTP layer has no
request bodies and a session's progress is a stream anyway: the client sends one AskRequest and
receives AskEvent messages until the one of type 'result' or 'error'. Everything under /v1/ needs
`Authorization: Bearer <token>`; other paths are left to the daemon link. On a replica, a session
another replica runs is followed from the shared store (agent.platform.replica_follow).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ValidationError
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from opik_connect.agent.ollie.sessions import OllieSessions
from opik_connect.agent.platform.http_replies import (
    bearer_authorized,
    error_body,
    json_response,
    unauthorized,
)
from opik_connect.agent.platform.store import PlatformStore
from opik_connect.protocol import (
    AskEvent,
    AskRequest,
    BridgeError,
    ErrorBody,
    ErrorCode,
    TraceSinkAddress,
)

API_PREFIX = "/v1/"
ASK_PATH = "/v1/ask"
FOLLOW_PREFIX = "/v1/sessions/"
FOLLOW_SUFFIX = "/stream"

RunnerList = Callable[[], Sequence[BaseModel]]

log = logging.getLogger(__name__)


class StoredFollowers(Protocol):
    """Followers of sessions kept in a shared store (agent.platform.replica_follow)."""

    async def follow(self, session_id: str) -> AsyncIterator[AskEvent] | None: ...


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_dump(item) for item in value]
    if isinstance(value, dict):
        return {key: _dump(item) for key, item in value.items()}
    return value


class PlatformHttpApi:
    """Mount with `platform.http_api = PlatformHttpApi(...)`; the platform calls the two hooks."""

    def __init__(
        self,
        *,
        token: str,
        store: PlatformStore,
        sessions: OllieSessions,
        runners: RunnerList,
        trace_sink: TraceSinkAddress | None = None,
        followers: StoredFollowers | None = None,
    ) -> None:
        """`followers` (a replica's) follow sessions other replicas run; without them, only
        this process's running and recent sessions can be followed."""
        self._token = token.encode()
        self._store = store
        self._sessions = sessions
        self._runners = runners
        self._trace_sink = trace_sink
        self._followers = followers
        self._routes: dict[str, Callable[[dict[str, list[str]]], Awaitable[Any]]] = {
            "/v1/runners": self._get_runners,
            "/v1/sessions": self._get_sessions,
            "/v1/proposals": self._get_proposals,
            "/v1/decisions": self._get_decisions,
            "/v1/suite-results": self._get_suite_results,
            "/v1/fixes": self._get_fixes,
            "/v1/traces/sink": self._get_trace_sink,
        }

    @property
    def sessions(self) -> OllieSessions:
        """The platform's session manager (the daemon's `ollie>` prompt asks it in-process)."""
        return self._sessions

    def authorized(self, headers: Headers) -> bool:
        return bearer_authorized(headers, self._token)

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """Answer GET /v1/... reads; refuse unauthorized /v1/ websockets; leave the rest alone."""
        url = urlsplit(request.path)
        if not url.path.startswith(API_PREFIX):
            return None
        if not self.authorized(request.headers):
            return unauthorized(connection)
        if self._is_websocket_path(url.path):
            if request.headers.get("Upgrade", "").lower() != "websocket":
                return json_response(
                    connection,
                    HTTPStatus.UPGRADE_REQUIRED,
                    error_body(ErrorCode.INVALID_ARGS, f"{url.path} is a websocket"),
                )
            return None
        try:
            body = await self._read(url.path, parse_qs(url.query))
        except BridgeError as exc:
            status = (
                HTTPStatus.NOT_FOUND
                if exc.code == ErrorCode.SESSION_NOT_FOUND
                else HTTPStatus.BAD_REQUEST
            )
            return json_response(connection, status, error_body(exc.code, exc.message))
        if body is None:
            return json_response(
                connection, HTTPStatus.NOT_FOUND, error_body("not_found", f"no route {url.path}")
            )
        return json_response(connection, HTTPStatus.OK, _dump(body))

    def _is_websocket_path(self, path: str) -> bool:
        return path == ASK_PATH or (path.startswith(FOLLOW_PREFIX) and path.endswith(FOLLOW_SUFFIX))

    async def handle_websocket(self, connection: ServerConnection) -> bool:
        """Serve /v1/ask and /v1/sessions/{id}/stream; False for any other path (the link's)."""
        assert connection.request is not None
        path = urlsplit(connection.request.path).path
        if path == ASK_PATH:
            await self._ask(connection)
            return True
        if path.startswith(FOLLOW_PREFIX) and path.endswith(FOLLOW_SUFFIX):
            session_id = path[len(FOLLOW_PREFIX) : -len(FOLLOW_SUFFIX)]
            await self._follow(connection, session_id)
            return True
        return False

    async def _ask(self, connection: ServerConnection) -> None:
        try:
            raw = await connection.recv()
            try:
                request = AskRequest.model_validate_json(raw)
            except ValidationError as exc:
                first = exc.errors()[0]
                field = ".".join(str(part) for part in first["loc"]) or "request"
                raise BridgeError(ErrorCode.INVALID_ARGS, f"{field}: {first['msg']}") from exc
            live = await self._sessions.ask(request)
        except BridgeError as exc:
            await _senderror_body(connection, None, exc.to_body())
            return
        except ConnectionClosed:
            return
        await _relay(connection, live.stream())

    async def _follow(self, connection: ServerConnection, session_id: str) -> None:
        live = self._sessions.live(session_id)
        events = live.stream() if live is not None else None
        if events is None and self._followers is not None:
            events = await self._followers.follow(session_id)
        if events is None:
            body = ErrorBody(
                code=ErrorCode.SESSION_NOT_FOUND,
                message=f"no running or recent session {session_id!r} on this platform",
            )
            await _senderror_body(connection, session_id, body)
            return
        await _relay(connection, events)

    async def _read(self, path: str, query: dict[str, list[str]]) -> Any:
        route = self._routes.get(path.rstrip("/"))
        if route is not None:
            return await route(query)
        if path.startswith(FOLLOW_PREFIX):
            return await self._get_session(path[len(FOLLOW_PREFIX) :].strip("/"))
        return None

    async def _get_runners(self, query: dict[str, list[str]]) -> Any:
        return self._runners()

    async def _get_sessions(self, query: dict[str, list[str]]) -> Any:
        return await self._store.list_sessions(limit=_int(query, "limit", 100))

    async def _get_session(self, session_id: str) -> Any:
        session = await self._store.get_session(session_id)
        if session is None:
            raise BridgeError(ErrorCode.SESSION_NOT_FOUND, f"no session {session_id!r}")
        proposals = await self._store.list_proposals(session_id=session_id)
        decisions = []
        for proposal in proposals:
            decision = await self._store.get_decision(proposal.proposal_id)
            if decision is not None:
                decisions.append(decision)
        return {
            "session": session,
            "events": await self._store.session_events(session_id),
            "proposals": proposals,
            "decisions": decisions,
            "suite_results": [
                record
                for record in await self._store.list_suite_results()
                if record.session_id == session_id
                or record.proposal_id in {p.proposal_id for p in proposals}
            ],
        }

    async def _get_proposals(self, query: dict[str, list[str]]) -> Any:
        session_id = _str(query, "session_id")
        proposals = await self._store.list_proposals(session_id=session_id)
        out = []
        for proposal in proposals:
            decision = await self._store.get_decision(proposal.proposal_id)
            out.append({"proposal": proposal, "decision": decision})
        return out

    async def _get_decisions(self, query: dict[str, list[str]]) -> Any:
        return await self._store.list_decisions()

    async def _get_suite_results(self, query: dict[str, list[str]]) -> Any:
        return await self._store.list_suite_results(
            suite=_str(query, "suite"), proposal_id=_str(query, "proposal_id")
        )

    async def _get_fixes(self, query: dict[str, list[str]]) -> Any:
        return await self._store.list_fixes()

    async def _get_trace_sink(self, query: dict[str, list[str]]) -> Any:
        """Where the Opik SDK logs to (its OPIK_URL_OVERRIDE; the API key is the same token)."""
        return (self._trace_sink or TraceSinkAddress(url=None)).model_dump()


async def _relay(connection: ServerConnection, events: AsyncIterator[AskEvent]) -> None:
    """Send every event of the session (past ones first), then close. Ends as soon as the
    connection does (the listener left, or a stopping platform closed it), so a session that
    waits on something holds no connection handler: a server waits for those when it closes."""
    sending = asyncio.create_task(_send_events(connection, events))
    closed = asyncio.create_task(connection.wait_closed())
    try:
        await asyncio.wait({sending, closed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, closed):
            task.cancel()
        await asyncio.gather(sending, closed, return_exceptions=True)


async def _send_events(connection: ServerConnection, events: AsyncIterator[AskEvent]) -> None:
    """A stream that fails (a follower's store read) closes with 1011, not 1000: the client
    must not take it for the session's end."""
    try:
        try:
            async for event in events:
                await connection.send(event.model_dump_json())
        except Exception:
            log.exception("session stream failed")
            await connection.close(CloseCode.INTERNAL_ERROR, "session stream failed")
            return
        await connection.close(1000, "session finished")
    except ConnectionClosed:
        return


async def _senderror_body(
    connection: ServerConnection, session_id: str | None, body: ErrorBody
) -> None:
    event = AskEvent(session_id=session_id, seq=0, type="error", data=body.model_dump(mode="json"))
    try:
        await connection.send(event.model_dump_json())
        await connection.close(1000, body.code)
    except ConnectionClosed:
        return


def _str(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _int(query: dict[str, list[str]], key: str, default: int) -> int:
    value = _str(query, key)
    if value is None:
        return default
    try:
        return max(1, min(int(value), 1000))
    except ValueError as exc:
        raise BridgeError(ErrorCode.INVALID_ARGS, f"{key} must be an integer") from exc
