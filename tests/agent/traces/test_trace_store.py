"""The trace store: files in the documented layout, and Opik's REST API over real HTTP."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from opik_connect.agent.traces.store import (
    OpikTraceSource,
    TraceNotFound,
    TraceStore,
    TraceStoreError,
)

TRACES = Path(__file__).parents[2] / "trace_fixtures"


class FakeOpik:
    """Just enough of Opik's REST API: one trace, its spans paged, auth checked."""

    def __init__(self, span_count: int) -> None:
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self.fail_spans_with: int | None = None
        trace = {"id": "tr-remote", "project_id": "p-7", "name": "remote", "input": {"q": "hi"}}
        spans = [
            {"id": f"s{i:03d}", "trace_id": "tr-remote", "name": f"step {i}", "type": "general"}
            for i in range(span_count)
        ]
        self.trace, self.spans = trace, spans
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                fake.requests.append((url.path, query, dict(self.headers)))
                if self.headers.get("authorization") != "key-1":
                    return self._send(401, {"errors": ["unauthorized"]})
                if url.path == "/api/v1/private/traces/tr-remote":
                    return self._send(200, fake.trace)
                if url.path == "/api/v1/private/spans" and fake.fail_spans_with:
                    return self._send(fake.fail_spans_with, {"errors": ["boom"]})
                if url.path == "/api/v1/private/spans" and query["trace_id"] == ["tr-remote"]:
                    page, size = int(query["page"][0]), int(query["size"][0])
                    content = fake.spans[(page - 1) * size : page * size]
                    body = {"page": page, "size": len(content), "total": len(fake.spans)}
                    return self._send(200, {**body, "content": content})
                return self._send(404, {"errors": ["not found"]})

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


@pytest.fixture
def opik() -> Iterator[FakeOpik]:
    fake = FakeOpik(span_count=150)
    thread = threading.Thread(target=fake.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


async def test_directory_layout_loads_trace_spans_and_extra_fields() -> None:
    record = await TraceStore(directory=TRACES).get("tr-refund-0001")
    assert record.trace.name == "answer_question"
    assert record.trace.model_extra == {"thread_id": "th-9"}
    assert [(s.name, s.value) for s in record.trace.feedback_scores or []] == [("correct", 0)]
    llm = record.span("sp-llm")
    assert llm is not None and llm.type == "llm" and llm.model == "offline-stub-1"
    rank = record.span("sp-rank")
    assert rank is not None and rank.error_info is not None
    assert rank.error_info.exception_type == "TimeoutError"


async def test_spans_without_trace_id_take_the_traces(tmp_path: Path) -> None:
    doc = {"trace": {"id": "t1"}, "spans": [{"id": "s1", "name": "x", "type": "tool"}]}
    (tmp_path / "anything.json").write_text(json.dumps(doc))
    record = await TraceStore(directory=tmp_path).get("t1")
    assert record.spans[0].trace_id == "t1"


async def test_unknown_trace_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(TraceNotFound):
        await TraceStore(directory=TRACES).get("nope")
    with pytest.raises(TraceNotFound):
        await TraceStore().get("nope")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "bad.json"),
        (json.dumps({"spans": []}), "expected an object with 'trace'"),
        (
            json.dumps({"trace": {"id": "t"}, "spans": [{"id": "s", "type": "agent"}]}),
            "spans.0.type",
        ),
    ],
)
async def test_bad_files_name_the_file_and_field(
    tmp_path: Path, content: str, expected: str
) -> None:
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(TraceStoreError, match=expected):
        await TraceStore(directory=tmp_path).get("t")


async def test_duplicate_trace_ids_are_refused(tmp_path: Path) -> None:
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps({"trace": {"id": "same"}, "spans": []}))
    with pytest.raises(TraceStoreError, match="also in"):
        await TraceStore(directory=tmp_path).get("same")


async def test_new_file_in_directory_is_found_after_first_index(tmp_path: Path) -> None:
    store = TraceStore(directory=tmp_path)
    with pytest.raises(TraceNotFound):
        await store.get("late")
    (tmp_path / "late.json").write_text(json.dumps({"trace": {"id": "late"}, "spans": []}))
    assert (await store.get("late")).trace.id == "late"


async def test_fetch_from_opik_pages_spans_with_auth_headers_and_caches(
    opik: FakeOpik, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPIK_URL_OVERRIDE", opik.url)
    monkeypatch.setenv("OPIK_API_KEY", "key-1")
    monkeypatch.setenv("OPIK_WORKSPACE", "team-a")
    store = TraceStore.from_env()
    record = await store.get("tr-remote")
    assert len(record.spans) == 150
    assert [span.id for span in record.spans[:2]] == ["s000", "s001"]
    paths = [path for path, _, _ in opik.requests]
    assert paths == ["/api/v1/private/traces/tr-remote"] + ["/api/v1/private/spans"] * 2
    _, query, headers = opik.requests[2]
    assert query == {
        "trace_id": ["tr-remote"],
        "page": ["2"],
        "size": ["100"],
        "project_id": ["p-7"],
    }
    assert headers["authorization"] == "key-1"
    assert headers["Comet-Workspace"] == "team-a"
    assert await store.get("tr-remote") is record
    assert len(opik.requests) == 3, "a loaded trace is served from the cache"


async def test_opik_errors_are_named(opik: FakeOpik) -> None:
    with pytest.raises(TraceNotFound):
        await OpikTraceSource(opik.url, api_key="key-1").fetch("missing")
    with pytest.raises(TraceStoreError, match="HTTP 401"):
        await OpikTraceSource(opik.url, api_key="wrong").fetch("tr-remote")
    opik.fail_spans_with = 500
    with pytest.raises(TraceStoreError, match="HTTP 500"):
        await OpikTraceSource(opik.url, api_key="key-1").fetch("tr-remote")


async def test_unreachable_opik_is_a_store_error() -> None:
    source = OpikTraceSource("http://127.0.0.1:9/api", timeout_s=2)
    with pytest.raises(TraceStoreError, match="ConnectError"):
        await source.fetch("t")


async def test_directory_first_then_opik(opik: FakeOpik) -> None:
    store = TraceStore(directory=TRACES, opik=OpikTraceSource(opik.url, api_key="key-1"))
    assert (await store.get("tr-refund-0001")).trace.id == "tr-refund-0001"
    assert opik.requests == []
    assert (await store.get("tr-remote")).trace.id == "tr-remote"


def test_no_opik_url_means_no_remote_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPIK_URL_OVERRIDE", raising=False)
    assert OpikTraceSource.from_env() is None
