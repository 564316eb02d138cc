"""The trace sink's HTTP server: the part of Opik's REST API the `opik` SDK's tracer writes to.

`OPIK_URL_OVERRIDE=http://127.0.0.1:<port>/api` and `OPIK_API_KEY=<platform token>` make any
`@opik.track` agent log here. It is its own small HTTP/1.1 server (h11, the parser httpx already
uses) on a loopback port, beside the platform's websocket port, because websockets' HTTP layer
refuses request bodies. Routes are those the SDK calls (opik/rest_api/{traces,spans,check}) plus
the reads `traces list/show` and the trace store use. Every /api/v1/ route needs a key in
`Authorization` (raw, as the SDK sends it, or `Bearer`), checked before the body is read: the
platform's token for everything, or a paired runner's sink key (sink_keys.py) for the writes
only (403 elsewhere); errors are Opik's `{"code", "message", "errors"}`. Bodies over
MAX_BODY_BYTES (after gzip) are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import ssl
import time
import zlib
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import h11
from pydantic import BaseModel, ValidationError

from opik_connect.agent.traces.sink_keys import LinkKeys, SinkAuth
from opik_connect.agent.traces.sink_models import (
    ScoreBatch,
    SpanBatch,
    SpanUpdate,
    SpanWrite,
    TraceBatch,
    TraceFilter,
    TraceUpdate,
    TraceWrite,
)
from opik_connect.agent.traces.sink_store import SinkStore

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 * 1024 * 1024
IDLE_TIMEOUT_S = 60.0
OPIK_API_VERSION = "opik-connect-sink"
MAX_SPANS_PAGE = 1000
WRITE_ROUTES = 10
"""The first routes of TraceSinkServer._routes: writes and the SDK's auth checks."""

M = TypeVar("M", bound=BaseModel)


class SinkHttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Handler = Callable[[dict[str, str], dict[str, list[str]], bytes], Awaitable[tuple[int, Any]]]


class TraceSinkServer:
    """`await start()`, then `url` is the SDK's OPIK_URL_OVERRIDE; `await stop()` when done."""

    def __init__(
        self,
        store: SinkStore,
        token: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        runner_keys: LinkKeys | None = None,
        clock: Callable[[], float] = time.time,
    ):
        """`runner_keys` finds a paired runner's link key, so its sink keys can write."""
        self.store = store
        self.auth = SinkAuth(token, runner_keys, clock)
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            # Writes first: WRITE_ROUTES is how many a runner's sink key may use.
            ("POST", re.compile(r"/v1/private/traces/batch"), self._traces_batch),
            ("POST", re.compile(r"/v1/private/traces"), self._trace_create),
            ("PATCH", re.compile(r"/v1/private/traces/(?P<id>[^/]+)"), self._trace_update),
            ("PUT", re.compile(r"/v1/private/traces/feedback-scores"), self._trace_scores),
            ("POST", re.compile(r"/v1/private/spans/batch"), self._spans_batch),
            ("POST", re.compile(r"/v1/private/spans"), self._span_create),
            ("PATCH", re.compile(r"/v1/private/spans/(?P<id>[^/]+)"), self._span_update),
            ("PUT", re.compile(r"/v1/private/spans/feedback-scores"), self._span_scores),
            ("POST", re.compile(r"/v1/private/auth"), self._auth_check),
            ("GET", re.compile(r"/v1/private/auth/workspace"), self._workspace),
            # Reads: the platform's token only.
            ("GET", re.compile(r"/v1/private/traces"), self._list_traces),
            ("GET", re.compile(r"/v1/private/traces/(?P<id>[^/]+)"), self._get_trace),
            ("GET", re.compile(r"/v1/private/spans"), self._list_spans),
        ]

    @property
    def url(self) -> str:
        """The base URL the SDK wants in OPIK_URL_OVERRIDE (it appends /v1/private/...)."""
        host, port = self._server_address()
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self._ssl else 'http'}://{host}:{port}/api"

    @property
    def port(self) -> int:
        return self._server_address()[1]

    @property
    def tls(self) -> bool:
        return self._ssl is not None

    def _server_address(self) -> tuple[str, int]:
        assert self._server is not None, "start() first"
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self._host, self._port, ssl=self._ssl
        )

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> TraceSinkServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- connections ------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await _Connection(self, reader, writer).serve()
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()

    async def route(
        self, method: str, target: str, headers: dict[str, str]
    ) -> Callable[[bytes], Awaitable[tuple[int, Any]]]:
        """The handler for a request, checked (path, token, method) before its body is read."""
        url = urlsplit(target)
        path = unquote(url.path)
        if path.startswith("/api/"):
            path = path[len("/api") :]
        if path in ("/is-alive/ping", "/is-alive/ver"):
            return _health
        if not path.startswith("/v1/"):
            raise SinkHttpError(HTTPStatus.NOT_FOUND, f"no route {path}")
        caller = await self.auth.caller(headers)
        if not caller.operator and caller.runner_id is None:
            raise SinkHttpError(HTTPStatus.UNAUTHORIZED, caller.problem)
        runner_only = not caller.operator
        allowed = False
        for index, (route_method, pattern, handler) in enumerate(self._routes):
            match = pattern.fullmatch(path.rstrip("/"))
            if match is None:
                continue
            allowed = True
            if route_method != method:
                continue
            if runner_only and index >= WRITE_ROUTES:
                raise SinkHttpError(
                    HTTPStatus.FORBIDDEN,
                    "a runner's sink key writes traces, spans and feedback scores only",
                )
            params = {key: [*value] for key, value in parse_qs(url.query).items()}
            return functools.partial(handler, match.groupdict(), params)
        if allowed:
            raise SinkHttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} not allowed on {path}")
        raise SinkHttpError(HTTPStatus.NOT_FOUND, f"no route {path}")

    # --- writes -----------------------------------------------------------------------------------

    async def _traces_batch(self, match, query, body) -> tuple[int, Any]:
        batch = _parse(TraceBatch, body)
        await self.store.write_traces(batch.traces)
        return HTTPStatus.NO_CONTENT, None

    async def _trace_create(self, match, query, body) -> tuple[int, Any]:
        await self.store.write_traces([_parse(TraceWrite, body)])
        return HTTPStatus.CREATED, None

    async def _trace_update(self, match, query, body) -> tuple[int, Any]:
        await self.store.write_traces([(_entity_id(match), _parse(TraceUpdate, body))])
        return HTTPStatus.NO_CONTENT, None

    async def _trace_scores(self, match, query, body) -> tuple[int, Any]:
        await self.store.write_scores("trace", _parse(ScoreBatch, body).scores)
        return HTTPStatus.NO_CONTENT, None

    async def _spans_batch(self, match, query, body) -> tuple[int, Any]:
        await self.store.write_spans(_parse(SpanBatch, body).spans)
        return HTTPStatus.NO_CONTENT, None

    async def _span_create(self, match, query, body) -> tuple[int, Any]:
        await self.store.write_spans([_parse(SpanWrite, body)])
        return HTTPStatus.CREATED, None

    async def _span_update(self, match, query, body) -> tuple[int, Any]:
        await self.store.write_spans([(_entity_id(match), _parse(SpanUpdate, body))])
        return HTTPStatus.NO_CONTENT, None

    async def _span_scores(self, match, query, body) -> tuple[int, Any]:
        await self.store.write_scores("span", _parse(ScoreBatch, body).scores)
        return HTTPStatus.NO_CONTENT, None

    async def _auth_check(self, match, query, body) -> tuple[int, Any]:
        return HTTPStatus.NO_CONTENT, None

    async def _workspace(self, match, query, body) -> tuple[int, Any]:
        return HTTPStatus.OK, {"workspace_name": "default"}

    # --- reads ------------------------------------------------------------------------------------

    async def _list_traces(self, match, query, body) -> tuple[int, Any]:
        """Opik's page shape; the filters are `traces list`'s (see TraceFilter)."""
        fields = {
            key: values[0] for key, values in query.items() if key in TraceFilter.model_fields
        }
        try:
            wanted = TraceFilter.model_validate(fields)
        except ValidationError as exc:
            raise SinkHttpError(HTTPStatus.BAD_REQUEST, _first_error(exc)) from exc
        found, total = await self.store.search(wanted)
        content = [item.model_dump(mode="json") for item in found]
        return HTTPStatus.OK, {"content": content, "total": total, "size": len(content)}

    async def _get_trace(self, match, query, body) -> tuple[int, Any]:
        record = await self.store.get(_entity_id(match))
        if record is None:
            raise SinkHttpError(HTTPStatus.NOT_FOUND, f"trace {match['id']!r} not found")
        return HTTPStatus.OK, record.trace.model_dump(mode="json", exclude_none=True)

    async def _list_spans(self, match, query, body) -> tuple[int, Any]:
        trace_id = (query.get("trace_id") or [""])[0]
        record = await self.store.get(trace_id) if trace_id else None
        spans = record.spans if record is not None else []
        try:
            page = max(1, int((query.get("page") or ["1"])[0]))
            size = max(1, min(int((query.get("size") or ["100"])[0]), MAX_SPANS_PAGE))
        except ValueError as exc:
            raise SinkHttpError(HTTPStatus.BAD_REQUEST, "page and size must be integers") from exc
        chunk = spans[(page - 1) * size : page * size]
        content = [span.model_dump(mode="json", exclude_none=True) for span in chunk]
        return HTTPStatus.OK, {"content": content, "page": page, "size": size, "total": len(spans)}


async def _health(body: bytes) -> tuple[int, Any]:
    return HTTPStatus.OK, {"healthy": True, "version": OPIK_API_VERSION}


def _entity_id(match: dict[str, str]) -> str:
    value = match["id"]
    if not re.fullmatch(r"[\w.:-]{1,128}", value):
        raise SinkHttpError(HTTPStatus.BAD_REQUEST, f"bad id {value[:40]!r}")
    return value


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def _parse(model: type[M], body: bytes) -> M:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SinkHttpError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SinkHttpError(HTTPStatus.UNPROCESSABLE_ENTITY, _first_error(exc)) from exc


def _gunzip(body: bytes) -> bytes:
    """Decompress without ever holding more than MAX_BODY_BYTES (a small bomb stays small)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, MAX_BODY_BYTES + 1)
    except zlib.error as exc:
        raise SinkHttpError(HTTPStatus.BAD_REQUEST, f"bad gzip body: {exc}") from exc
    if len(out) > MAX_BODY_BYTES or inflater.unconsumed_tail:
        raise SinkHttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large once unzipped")
    if not inflater.eof:
        raise SinkHttpError(HTTPStatus.BAD_REQUEST, "truncated gzip body")
    return out


def error_body(status: int, message: str) -> dict[str, Any]:
    """Opik's error shape: ErrorMessage (code, message) and the validation form (errors)."""
    return {"code": int(status), "message": message, "errors": [message]}


class _Connection:
    """One keep-alive HTTP/1.1 connection, request after request, parsed by h11."""

    def __init__(
        self, server: TraceSinkServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.SERVER)

    async def _next(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            async with asyncio.timeout(IDLE_TIMEOUT_S):
                data = await self.reader.read(65536)
            self.conn.receive_data(data)

    async def serve(self) -> None:
        with contextlib.suppress(h11.RemoteProtocolError, TimeoutError, ConnectionError):
            while True:
                event = await self._next()
                if not isinstance(event, h11.Request):
                    return
                status, payload = await self._handle(event)
                await self._send(status, payload)
                if self.conn.our_state is h11.MUST_CLOSE:
                    return
                self.conn.start_next_cycle()

    async def _handle(self, request: h11.Request) -> tuple[int, Any]:
        headers = {
            name.decode().lower(): value.decode("latin-1") for name, value in request.headers
        }
        try:
            handler = await self.server.route(
                request.method.decode(), request.target.decode("latin-1"), headers
            )
            body = await self._body(headers)
            if headers.get("content-encoding", "").lower() == "gzip":
                body = _gunzip(body)
            return await handler(body)
        except SinkHttpError as exc:
            return exc.status, error_body(exc.status, exc.message)
        except (h11.RemoteProtocolError, TimeoutError, ConnectionError):
            raise
        except Exception:
            log.exception("trace sink: %s %s failed", request.method, request.target)
            status = HTTPStatus.INTERNAL_SERVER_ERROR
            return status, error_body(status, "the sink could not store or read this")

    async def _body(self, headers: dict[str, str]) -> bytes:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise SinkHttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
        if self.conn.they_are_waiting_for_100_continue:
            proceed = h11.InformationalResponse(status_code=100, headers=[])
            self.writer.write(self.conn.send(proceed))
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self._next()
            if isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY_BYTES:
                    raise SinkHttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
                chunks.append(bytes(event.data))

    async def _send(self, status: int, payload: Any) -> None:
        body = b"" if payload is None else json.dumps(payload, default=str).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
        if self.conn.their_state is not h11.DONE:
            # The body was refused unread: answer, then close rather than read the rest.
            headers.append(("connection", "close"))
        data = self.conn.send(h11.Response(status_code=status, headers=headers))
        if body:
            data += self.conn.send(h11.Data(data=body))
        data += self.conn.send(h11.EndOfMessage())
        self.writer.write(data)
        await self.writer.drain()
