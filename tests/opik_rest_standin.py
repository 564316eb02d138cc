"""A loopback stand-in for Opik's REST API, built from the request shapes of the opik SDK 2.2:
`POST /v1/private/traces/batch {"traces": [...]}`, `POST /v1/private/spans/batch {"spans": [...]}`,
`PATCH /v1/private/traces/{id}` and `/spans/{id}`, `GET /v1/private/traces/{id}`,
`GET /v1/private/spans?trace_id=&page=&size=`, and the health ping `GET /is-alive/ping`, which
must answer 200 or the SDK goes offline and keeps its messages for a later replay. Bodies may be
gzipped (the SDK compresses). Auth is the SDK's: the API key in `authorization`, the workspace in
`Comet-Workspace`. Test suites are datasets of type `evaluation_suite`, as the SDK makes them:
`POST /v1/private/datasets`, `POST /datasets/retrieve {"dataset_name"}`, versions through
`POST /datasets/{id}/items/changes?override=true {evaluators, execution_policy}` and
`GET /datasets/{id}/versions`, items through `PUT /datasets/items {dataset_id, items}`,
`GET /datasets/{id}/items?page&size` and `POST /datasets/items/delete {item_ids}`. Requests it does
not model are recorded and answered 204."""

from __future__ import annotations

import gzip
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

PREFIX = "/api/v1/private"


class OpikStandIn:
    def __init__(self, api_key: str | None = None, workspace: str | None = None) -> None:
        self.api_key = api_key
        self.workspace = workspace
        self.traces: dict[str, dict[str, Any]] = {}
        self.spans: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.datasets: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.items: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.root_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = f"{self.root_url}/api"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def _serve(self, method: str) -> None:
                url = urlparse(self.path)
                with standin.lock:
                    standin.requests.append((method, url.path))
                if not url.path.startswith("/api/"):
                    return self._send(404, None, html=True)
                if standin.api_key and self.headers.get("authorization") != standin.api_key:
                    return self._send(401, {"errors": ["API key is invalid"]})
                workspace = self.headers.get("Comet-Workspace")
                if standin.workspace and workspace != standin.workspace:
                    return self._send(403, {"errors": [f"no access to workspace {workspace}"]})
                status, body = standin.route(method, url.path, parse_qs(url.query), self._body())
                self._send(status, body)

            def _body(self) -> Any:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                if raw[:2] == b"\x1f\x8b":
                    raw = gzip.decompress(raw)
                return json.loads(raw) if raw else None

            def _send(self, status: int, payload: Any, html: bool = False) -> None:
                data = b"<html>not found</html>" if html else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "text/html" if html else "application/json")
                self.send_header("content-length", str(len(data) if status != 204 else 0))
                self.end_headers()
                if status != 204:
                    self.wfile.write(data)

        return Handler

    def route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Any:
        if path == "/api/is-alive/ping":
            return 200, {"healthy": True}
        if path.startswith(f"{PREFIX}/datasets"):
            with self.lock:
                return self._datasets(method, path.removeprefix(f"{PREFIX}/datasets"), query, body)
        with self.lock:
            if method == "POST" and path == f"{PREFIX}/traces/batch":
                for trace in body["traces"]:
                    self.traces.setdefault(trace["id"], {}).update(trace)
                return 204, None
            if method == "POST" and path == f"{PREFIX}/spans/batch":
                for span in body["spans"]:
                    self.spans.setdefault(span["id"], {}).update(span)
                return 204, None
            for kind, store in (("traces", self.traces), ("spans", self.spans)):
                if method == "PATCH" and path.startswith(f"{PREFIX}/{kind}/"):
                    store.setdefault(path.rsplit("/", 1)[1], {}).update(body or {})
                    return 204, None
            if method == "GET" and path.startswith(f"{PREFIX}/traces/"):
                trace = self.traces.get(path.rsplit("/", 1)[1])
                return (200, trace) if trace else (404, {"errors": ["Trace not found"]})
            if method == "GET" and path == f"{PREFIX}/spans":
                trace_id = query["trace_id"][0]
                page, size = int(query["page"][0]), int(query["size"][0])
                spans = [s for s in self.spans.values() if s.get("trace_id") == trace_id]
                content = spans[(page - 1) * size : page * size]
                return 200, {
                    "page": page,
                    "size": len(content),
                    "total": len(spans),
                    **{"content": content},
                }
        return 204, None

    def _datasets(self, method: str, rest: str, query: dict[str, list[str]], body: Any) -> Any:
        by_name = {d["name"]: d for d in self.datasets.values()}
        if method == "POST" and rest == "":
            if body["name"] in by_name:
                return 409, {"errors": ["already exists"]}
            dataset_id = str(uuid.uuid4())
            self.datasets[dataset_id] = {**body, "id": dataset_id}
            return 201, None
        if method == "POST" and rest == "/retrieve":
            found = by_name.get(body["dataset_name"])
            return (200, found) if found else (404, {"errors": ["Dataset not found"]})
        if method == "PUT" and rest == "/items":
            for item in body["items"]:
                item_id = item.get("id") or str(uuid.uuid4())
                self.items[item_id] = {**item, "id": item_id, "dataset_id": body["dataset_id"]}
            return 204, None
        if method == "POST" and rest == "/items/delete":
            for item_id in body["item_ids"]:
                self.items.pop(item_id, None)
            return 204, None
        dataset_id, _, tail = rest.removeprefix("/").partition("/")
        if dataset_id not in self.datasets:
            return 404, {"errors": ["Dataset not found"]}
        if method == "POST" and tail == "items/changes" and query.get("override") == ["true"]:
            self.versions.setdefault(dataset_id, []).insert(0, {**body, "dataset_id": dataset_id})
            return 200, self.versions[dataset_id][0]
        if method == "GET" and tail == "versions":
            content = self.versions.get(dataset_id, [])[: int(query["size"][0])]
            return 200, {"content": content, "total": len(self.versions.get(dataset_id, []))}
        if method == "GET" and tail == "items":
            items = [i for i in self.items.values() if i["dataset_id"] == dataset_id]
            page, size = int(query["page"][0]), int(query["size"][0])
            return 200, {"content": items[(page - 1) * size : page * size], "total": len(items)}
        return 404, {"errors": [f"not modelled: {method} {rest}"]}


@contextmanager
def opik_standin(api_key: str | None = None, workspace: str | None = None) -> Iterator[OpikStandIn]:
    standin = OpikStandIn(api_key, workspace)
    thread = threading.Thread(target=standin.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        standin.server.shutdown()
        standin.server.server_close()
        thread.join()
