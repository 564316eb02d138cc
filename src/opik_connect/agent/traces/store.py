"""Traces and spans in Opik's REST shape, loaded from JSON files or fetched from an Opik server.

File layout of a trace directory (what fixtures and `suite add --trace FILE` write):

    <dir>/<trace_id>.json      one file per trace, any name ending in `.json`, read non-recursively
    {
      "trace": {"id": "...", "name": "...", "start_time": "2026-01-01T10:00:00.000Z",
                "end_time": "...", "input": {...}, "output": {...}, "metadata": {...},
                "tags": [...], "usage": {...}, "error_info": {...} | null, ...},
      "spans": [{"id": "...", "trace_id": "...", "parent_span_id": null | "<span id>",
                 "name": "...", "type": "llm" | "tool" | "general" | "guardrail",
                 "start_time": "...", "end_time": "...", "input": ..., "output": ...,
                 "metadata": {...}, "tags": [...], "usage": {...},
                 "error_info": {"exception_type": "...", "message": "...", "traceback": "..."},
                 "model": "...", "provider": "..."}, ...]
    }

Field names are those of Opik's `TracePublic` and `SpanPublic`; extra fields (Opik sends many) are
kept, not refused. Times are ISO 8601. The trace is indexed by `trace.id`, not by the file name.
Spans whose `trace_id` is missing take the trace's id.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opik_connect.config import OPIK_CLOUD_URL, OpikSettings, load_opik_settings

SpanType = Literal["llm", "tool", "general", "guardrail"]
SPANS_PAGE_SIZE = 100


class TraceStoreError(Exception):
    """A trace could not be loaded (bad file, server error); the message names the source."""


class TraceNotFound(TraceStoreError):
    """No source knows this trace id."""

    def __init__(self, trace_id: str, where: str = "") -> None:
        super().__init__(f"trace {trace_id!r} not found" + (f" {where}" if where else ""))
        self.trace_id = trace_id


class OpikNotConfigured(TraceNotFound):
    """The trace is not local and no Opik server is configured to ask."""

    def __init__(self, trace_id: str, looked_in: str = "the local traces") -> None:
        super().__init__(trace_id)
        self.args = (
            f"trace {trace_id!r} not found in {looked_in}, and no Opik server is configured: "
            "run `opik configure`, or set OPIK_API_KEY and OPIK_WORKSPACE (Opik Cloud), or "
            "OPIK_URL_OVERRIDE (self-hosted, e.g. http://localhost:5173/api)",
        )


class OpikUnreachable(TraceStoreError):
    """Nothing answered at the configured URL."""


class OpikAuthFailed(TraceStoreError):
    """The server refused the API key or the workspace (401/403)."""


class OpikBadBaseUrl(TraceStoreError):
    """The URL answers, but not as Opik's REST API (usually a base URL without `/api`)."""


class ErrorInfo(BaseModel):
    """Opik's ErrorInfo: what an `@opik.track`-ed function raised."""

    model_config = ConfigDict(extra="allow")

    exception_type: str = ""
    message: str | None = None
    traceback: str | None = None


class FeedbackScore(BaseModel):
    """Opik's FeedbackScorePublic: a user's or a judge's verdict on a trace, with its reason."""

    model_config = ConfigDict(extra="allow")

    name: str
    value: float
    reason: str | None = None


class Span(BaseModel):
    """Opik's SpanPublic (the fields Ollie reads; the rest ride along as extras)."""

    model_config = ConfigDict(extra="allow")

    id: str
    trace_id: str | None = None
    parent_span_id: str | None = None
    name: str | None = None
    type: SpanType = "general"
    start_time: datetime | None = None
    end_time: datetime | None = None
    input: Any = None
    output: Any = None
    metadata: Any = None
    tags: list[str] | None = None
    usage: dict[str, Any] | None = None
    error_info: ErrorInfo | None = None
    model: str | None = None
    provider: str | None = None
    feedback_scores: list[FeedbackScore] | None = None


class Trace(BaseModel):
    """Opik's TracePublic (the fields Ollie reads; the rest ride along as extras)."""

    model_config = ConfigDict(extra="allow")

    id: str
    project_id: str | None = None
    name: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    input: Any = None
    output: Any = None
    metadata: Any = None
    tags: list[str] | None = None
    usage: dict[str, Any] | None = None
    error_info: ErrorInfo | None = None
    feedback_scores: list[FeedbackScore] | None = None


class TraceWithSpans(BaseModel):
    """One trace and all of its spans: the unit the store caches and the renderer draws."""

    trace: Trace
    spans: list[Span] = Field(default_factory=list)

    def span(self, span_id: str) -> Span | None:
        return next((span for span in self.spans if span.id == span_id), None)


def parse_trace_document(data: Any, source: str) -> TraceWithSpans:
    """Validate one `{"trace": ..., "spans": [...]}` document; errors name the source and field."""
    if not isinstance(data, dict) or "trace" not in data:
        raise TraceStoreError(f"{source}: expected an object with 'trace' and 'spans'")
    try:
        record = TraceWithSpans.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise TraceStoreError(f"{source}: {field}: {first['msg']}") from exc
    for span in record.spans:
        if span.trace_id is None:
            span.trace_id = record.trace.id
    return record


class DirectoryTraceSource:
    """Traces from a directory of JSON files in the layout described at the top of this module."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._index: dict[str, Path] | None = None

    def _build_index(self) -> dict[str, Path]:
        index: dict[str, Path] = {}
        if not self.directory.is_dir():
            raise TraceStoreError(f"{self.directory}: not a directory")
        for path in sorted(self.directory.glob("*.json")):
            trace_id = read_document(path).trace.id
            if trace_id in index:
                raise TraceStoreError(f"{path}: trace {trace_id!r} is also in {index[trace_id]}")
            index[trace_id] = path
        return index

    async def fetch(self, trace_id: str) -> TraceWithSpans:
        if self._index is None or trace_id not in self._index:
            self._index = await asyncio.to_thread(self._build_index)
        path = self._index.get(trace_id)
        if path is None:
            raise TraceNotFound(trace_id)
        return await asyncio.to_thread(read_document, path)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def read_document(path: Path) -> TraceWithSpans:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TraceStoreError(f"{path}: {exc}") from exc
    return parse_trace_document(data, str(path))


class OpikTraceSource:
    """Traces from an Opik server's REST API (`/v1/private/traces/{id}`, spans by trace id)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        workspace: str | None = None,
        url_source: str = "",
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.workspace = workspace
        self.url_source = url_source
        headers = {"accept": "application/json"}
        if api_key:
            headers["authorization"] = api_key
        if workspace:
            headers["Comet-Workspace"] = workspace
        self._headers = headers
        self._timeout_s = timeout_s
        self._transport = transport

    @classmethod
    def from_settings(cls, settings: OpikSettings) -> OpikTraceSource | None:
        if settings.url is None:
            return None
        return cls(
            settings.url,
            api_key=settings.api_key,
            workspace=settings.workspace,
            url_source=settings.url_source,
        )

    @classmethod
    def from_env(cls) -> OpikTraceSource | None:
        """The server the Opik SDK would use (OPIK_* variables, ~/.opik.config), if any."""
        return cls.from_settings(load_opik_settings())

    async def fetch(self, trace_id: str) -> TraceWithSpans:
        async with httpx.AsyncClient(
            base_url=self.base_url,
            headers=self._headers,
            timeout=self._timeout_s,
            transport=self._transport,
        ) as client:
            trace_data = await self._get(client, f"/v1/private/traces/{trace_id}", {}, trace_id)
            spans: list[Any] = []
            page = 1
            while True:
                params: dict[str, Any] = {
                    "trace_id": trace_id,
                    "page": page,
                    "size": SPANS_PAGE_SIZE,
                }
                if isinstance(trace_data, dict) and trace_data.get("project_id"):
                    params["project_id"] = trace_data["project_id"]
                body = await self._get(client, "/v1/private/spans", params, trace_id)
                if not isinstance(body, dict):
                    raise TraceStoreError(f"{self.base_url}/v1/private/spans: not a page object")
                content = body.get("content") or []
                spans.extend(content)
                total = body.get("total")
                if not content or len(content) < SPANS_PAGE_SIZE:
                    break
                if isinstance(total, int) and len(spans) >= total:
                    break
                page += 1
        return parse_trace_document({"trace": trace_data, "spans": spans}, self._url(trace_id))

    async def _get(
        self, client: httpx.AsyncClient, path: str, params: dict[str, Any], trace_id: str
    ) -> Any:
        where = f"{self.base_url}{path}"
        try:
            response = await client.get(path, params=params)
        except (httpx.ConnectError, httpx.TimeoutException) as exc:
            raise OpikUnreachable(
                f"cannot reach the Opik server at {self.base_url}{self._from()}: {exc!r}; "
                "is it running, and is the URL right?"
            ) from exc
        except httpx.HTTPError as exc:
            raise TraceStoreError(f"{where}: {exc!r}") from exc
        if response.status_code in (401, 403):
            raise OpikAuthFailed(
                f"the Opik server at {self.base_url} refused access (HTTP {response.status_code}) "
                f"to workspace {self._workspace()!r}: check OPIK_API_KEY and OPIK_WORKSPACE "
                "(or `opik configure`)"
            )
        body = _json_or_none(response)
        if body is None and (response.status_code < 400 or response.status_code == 404):
            raise self._bad_base_url(where, response.status_code)
        if response.status_code == 404:
            raise TraceNotFound(trace_id, f"in workspace {self._workspace()!r} at {self.base_url}")
        if response.status_code >= 400:
            raise TraceStoreError(f"{where}: HTTP {response.status_code}: {response.text[:200]}")
        return body

    def _bad_base_url(self, where: str, status: int) -> OpikBadBaseUrl:
        hint = (
            "the base URL usually ends in /api (e.g. http://localhost:5173/api or "
            f"{OPIK_CLOUD_URL})"
            if not self.base_url.endswith("/api")
            else "is this Opik's REST API?"
        )
        return OpikBadBaseUrl(
            f"{where} (from {self.url_source or 'the configured URL'}) answered HTTP {status} "
            f"without JSON: {hint}"
        )

    def _from(self) -> str:
        return f" (from {self.url_source})" if self.url_source else ""

    def _workspace(self) -> str:
        return self.workspace or "default"

    def _url(self, trace_id: str) -> str:
        return f"{self.base_url}/v1/private/traces/{trace_id}"


class SinkSource(Protocol):
    """The platform's trace sink (agent/traces/sink_store.SinkStore), as the store reads it."""

    @property
    def location(self) -> str:
        """Its file or database, to say where a missing trace was looked for."""
        ...

    async def get(self, trace_id: str) -> TraceWithSpans | None: ...

    async def search(self, query: Any) -> tuple[list[Any], int]: ...


class TraceStore:
    """Looks a trace up in the platform's sink, a directory, then the Opik server.

    Sink traces are read afresh each time (the SDK may still be writing them); the others are
    cached once loaded.
    """

    def __init__(
        self,
        directory: Path | None = None,
        opik: OpikTraceSource | None = None,
        sink: SinkSource | None = None,
        *,
        opik_expected: bool = False,
    ) -> None:
        """`opik_expected`: a miss with no server configured says so (OpikNotConfigured)."""
        self.directory = DirectoryTraceSource(directory) if directory is not None else None
        self.opik = opik
        self.sink = sink
        self._opik_expected = opik_expected
        self._cache: dict[str, TraceWithSpans] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_env(cls, directory: Path | None = None) -> TraceStore:
        """A store over `directory` (if given) and the Opik server the SDK's settings name."""
        return cls(directory=directory, opik=OpikTraceSource.from_env(), opik_expected=True)

    def add(self, record: TraceWithSpans) -> None:
        """Put a trace in the cache directly (e.g. one a request carried inline)."""
        self._cache[record.trace.id] = record

    def looked_in(self) -> str:
        """Where traces are looked for, in order, for a 'not found' the user can act on."""
        places = []
        if self.sink is not None:
            places.append(f"the platform's trace sink ({self.sink.location})")
        if self.directory is not None:
            places.append(f"trace files in {self.directory.directory}")
        if self.opik is not None:
            places.append(f"the Opik server at {self.opik.base_url}")
        return ", ".join(places) or "nowhere: no sink, trace directory or OPIK_URL_OVERRIDE"

    async def get(self, trace_id: str) -> TraceWithSpans:
        """The trace with its spans; raises TraceNotFound or TraceStoreError."""
        if self.sink is not None:
            found = await self.sink.get(trace_id)
            if found is not None:
                return found
        cached = self._cache.get(trace_id)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(trace_id, asyncio.Lock())
        async with lock:
            cached = self._cache.get(trace_id)
            if cached is not None:
                return cached
            record = await self._load(trace_id)
            self._cache[trace_id] = record
            return record

    async def _load(self, trace_id: str) -> TraceWithSpans:
        if self.directory is not None:
            try:
                return await self.directory.fetch(trace_id)
            except TraceNotFound:
                pass
        if self.opik is not None:
            return await self.opik.fetch(trace_id)
        if self._opik_expected:
            raise OpikNotConfigured(trace_id, self.looked_in())
        raise TraceNotFound(trace_id, f"(looked in {self.looked_in()})")
