"""Move a suite between `.opik/suites/NAME.yaml` and an Opik server, in the SDK's REST shapes.

On the server a test suite is a dataset of type `evaluation_suite`: its latest version carries the
global assertions (one `llm_judge` evaluator whose config `schema[].description` holds them) and the
global `execution_policy`; each dataset item carries `data`, `description`, its own evaluators and
policy. Our item ids ride along as an `opik-connect-id:<id>` tag, since Opik assigns item ids.
Opik has only natural-language assertions: a suite with deterministic ones is refused, naming
them, unless the caller drops them (`nl_only`), and `pull --force` keeps them (and the
entrypoint) from the file it replaces. A pulled suite calls its entrypoint as
`opik.run_tests` calls a task (`call: run_tests`), since that is how it ran on Opik's side.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from opik_connect.config import OpikSettings
from opik_connect.connect.suites.assertions import Assertion, describe
from opik_connect.connect.suites.suite_files import (
    CALL_RUN_TESTS,
    ExecutionPolicy,
    Suite,
    SuiteItem,
)
from opik_connect.protocol import BridgeError, ErrorCode

SUITE_TYPE = "evaluation_suite"
ID_TAG = "opik-connect-id:"
PAGE_SIZE = 100
_JUDGE_PROMPT = (
    "Judge whether the output satisfies each assertion (opik-connect suite; the Opik backend "
    "uses its own test-suite prompt)."
)


class SuiteTransferError(Exception):
    """The server refused, or the suite cannot be expressed in Opik's terms."""


def opik_assertions(suite: Suite, nl_only: bool) -> tuple[Suite, list[str]]:
    """The suite with only natural-language assertions, and the deterministic ones dropped;
    without `nl_only` any deterministic assertion is a refusal naming each of them."""
    dropped = [
        f"{where}: {describe(a)}"
        for where, assertions in _assertion_lists(suite)
        for a in assertions
        if not isinstance(a, str)
    ]
    if dropped and not nl_only:
        raise BridgeError(
            ErrorCode.INVALID_ARGS,
            "Opik test suites have only natural-language assertions; these are deterministic "
            "(push with --nl-only to leave them out): " + "; ".join(dropped),
            dropped=dropped,
        )
    kept = suite.model_copy(
        update={
            "global_assertions": [a for a in suite.global_assertions if isinstance(a, str)],
            "items": [
                item.model_copy(
                    update={"assertions": [a for a in item.assertions if isinstance(a, str)]}
                )
                for item in suite.items
            ],
        }
    )
    return kept, dropped


def keep_local_only(pulled: Suite, local: Suite) -> tuple[Suite, list[str]]:
    """What `pull --force` keeps of the file it replaces: what Opik cannot hold (the entrypoint,
    deterministic assertions of the suite and of items that still exist), named for the user."""
    kept: list[str] = []
    if local.entrypoint and not pulled.entrypoint:
        kept.append(f"entrypoint {local.entrypoint}")
    local_items = {item.id: item for item in local.items}

    def deterministic(where: str, assertions: list[Assertion]) -> list[Assertion]:
        found = [a for a in assertions if not isinstance(a, str)]
        kept.extend(f"{where}: {describe(a)}" for a in found)
        return found

    items = []
    for item in pulled.items:
        mine = local_items.get(item.id)
        extra = deterministic(f"item {item.id}", mine.assertions) if mine else []
        items.append(item.model_copy(update={"assertions": [*item.assertions, *extra]}))
    merged = pulled.model_copy(
        update={
            "entrypoint": pulled.entrypoint or local.entrypoint,
            "global_assertions": [
                *pulled.global_assertions,
                *deterministic("global", local.global_assertions),
            ],
            "items": items,
        }
    )
    return merged, kept


def _assertion_lists(suite: Suite) -> list[tuple[str, list[Assertion]]]:
    return [("global", suite.global_assertions)] + [
        (f"item {item.id}", item.assertions) for item in suite.items
    ]


def _evaluators(texts: list[str]) -> list[dict[str, Any]] | None:
    """One `llm_judge` evaluator in the SDK's LLMJudgeConfig shape, or None for no assertions."""
    if not texts:
        return None
    config = {
        "version": "1",
        "name": "llm_judge",
        "model": {"name": None, "temperature": None, "seed": None, "customParameters": None},
        "messages": [
            {"role": "SYSTEM", "content": _JUDGE_PROMPT},
            {"role": "USER", "content": "Input: {{input}}\nOutput: {{output}}"},
        ],
        "variables": {"input": "input", "output": "output"},
        "schema": [{"name": t, "type": "BOOLEAN", "description": t} for t in texts],
    }
    return [{"name": "llm_judge", "type": "llm_judge", "config": config}]


def _texts(evaluators: Any) -> list[str]:
    texts: list[str] = []
    for evaluator in evaluators or []:
        if isinstance(evaluator, dict) and evaluator.get("type") == "llm_judge":
            schema = (evaluator.get("config") or {}).get("schema") or []
            texts.extend(str(s.get("description") or s.get("name")) for s in schema)
    return texts


def _policy(policy: Any) -> dict[str, int] | None:
    if not isinstance(policy, dict):
        return None
    fields = {k: policy[k] for k in ("runs_per_item", "pass_threshold") if policy.get(k)}
    return fields or None


class OpikSuiteClient:
    """The few dataset endpoints a suite needs; errors name the server and what to check."""

    def __init__(self, settings: OpikSettings, transport: httpx.AsyncBaseTransport | None = None):
        if settings.url is None:
            raise SuiteTransferError(
                "no Opik server is configured: run `opik configure`, or set OPIK_API_KEY and "
                "OPIK_WORKSPACE (Opik Cloud), or OPIK_URL_OVERRIDE (self-hosted)"
            )
        self.base_url = settings.url
        headers = {"authorization": settings.api_key} if settings.api_key else {}
        if settings.workspace:
            headers["Comet-Workspace"] = settings.workspace
        self._client = httpx.AsyncClient(
            base_url=settings.url, headers=headers, timeout=30.0, transport=transport
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise SuiteTransferError(f"cannot reach Opik at {self.base_url}: {exc!r}") from exc
        if response.status_code in (401, 403):
            raise SuiteTransferError(
                f"Opik at {self.base_url} refused access (HTTP {response.status_code}): "
                "check OPIK_API_KEY and OPIK_WORKSPACE"
            )
        if response.status_code >= 400 and response.status_code != 404:
            raise SuiteTransferError(
                f"{method} {path}: HTTP {response.status_code}: {response.text[:200]}"
            )
        return response

    async def find(self, name: str) -> dict[str, Any] | None:
        response = await self._call(
            "POST", "/v1/private/datasets/retrieve", json={"dataset_name": name}
        )
        return None if response.status_code == 404 else response.json()

    async def pull(self, name: str) -> Suite:
        dataset = await self.find(name)
        if dataset is None:
            raise SuiteTransferError(f"no test suite {name!r} on {self.base_url}")
        _check_type(dataset)
        versions = (
            await self._call(
                "GET",
                f"/v1/private/datasets/{dataset['id']}/versions",
                params={"page": 1, "size": 1},
            )
        ).json()
        latest = (versions.get("content") or [{}])[0] if isinstance(versions, dict) else {}
        raw_items = await self._items(dataset["id"])
        policy = _policy(latest.get("execution_policy")) or {}
        return Suite.model_validate(
            {
                "name": name,
                "description": dataset.get("description") or "",
                "call": CALL_RUN_TESTS,
                "global_assertions": _texts(latest.get("evaluators")),
                "global_execution_policy": ExecutionPolicy.model_validate(policy),
                "items": [_item_from_opik(raw, n) for n, raw in enumerate(raw_items)],
            }
        )

    async def _items(self, dataset_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            body = (
                await self._call(
                    "GET",
                    f"/v1/private/datasets/{dataset_id}/items",
                    params={"page": page, "size": PAGE_SIZE},
                )
            ).json()
            content = body.get("content") or []
            items.extend(content)
            if len(content) < PAGE_SIZE:
                return items
            page += 1

    async def push(self, suite: Suite) -> str:
        """Create the suite or update it in place: global assertions and policy as a new version,
        items matched by their opik-connect id (added, updated, and removed when gone here)."""
        dataset = await self.find(suite.name)
        created = dataset is None
        if dataset is None:
            await self._call(
                "POST",
                "/v1/private/datasets",
                json={"name": suite.name, "description": suite.description, "type": SUITE_TYPE},
            )
            dataset = await self.find(suite.name)
            if dataset is None:
                raise SuiteTransferError(f"Opik did not keep the new suite {suite.name!r}")
        _check_type(dataset)
        dataset_id = dataset["id"]
        changes: dict[str, Any] = {
            "change_description": "pushed by opik-connect",
            "execution_policy": suite.global_execution_policy.model_dump(),
        }
        evaluators = _evaluators([a for a in suite.global_assertions if isinstance(a, str)])
        if evaluators:
            changes["evaluators"] = evaluators
        await self._call(
            "POST",
            f"/v1/private/datasets/{dataset_id}/items/changes",
            params={"override": "true"},
            json=changes,
        )
        existing = {} if created else _by_local_id(await self._items(dataset_id))
        items = [_item_to_opik(item, existing.get(item.id)) for item in suite.items]
        if items:
            await self._call(
                "PUT", "/v1/private/datasets/items", json={"dataset_id": dataset_id, "items": items}
            )
        gone = [
            server_id
            for local, server_id in existing.items()
            if local not in {i.id for i in suite.items}
        ]
        if gone:
            await self._call("POST", "/v1/private/datasets/items/delete", json={"item_ids": gone})
        return "created" if created else "updated"


def _check_type(dataset: dict[str, Any]) -> None:
    if dataset.get("type") not in (None, SUITE_TYPE, "test_suite"):
        raise SuiteTransferError(
            f"{dataset.get('name')!r} on the server is a {dataset.get('type')} dataset, "
            "not a test suite"
        )


def _by_local_id(raw_items: list[dict[str, Any]]) -> dict[str, str]:
    return {_local_id(raw, n): str(raw["id"]) for n, raw in enumerate(raw_items) if raw.get("id")}


def _local_id(raw: dict[str, Any], index: int) -> str:
    for tag in raw.get("tags") or []:
        if isinstance(tag, str) and tag.startswith(ID_TAG):
            return tag.removeprefix(ID_TAG)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(raw.get("description") or "")).strip("-")[:60]
    return slug or f"item-{index + 1}"


def _item_from_opik(raw: dict[str, Any], index: int) -> SuiteItem:
    data = raw.get("data")
    return SuiteItem.model_validate(
        {
            "id": _local_id(raw, index),
            "description": raw.get("description") or "",
            "data": data if isinstance(data, dict) else {"input": data},
            "assertions": _texts(raw.get("evaluators")),
            **(
                {"execution_policy": _policy(raw.get("execution_policy"))}
                if _policy(raw.get("execution_policy"))
                else {}
            ),
        }
    )


def _item_to_opik(item: SuiteItem, server_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": "sdk",
        "data": item.data,
        "description": item.description or None,
        "tags": [f"{ID_TAG}{item.id}"],
    }
    if server_id:
        body["id"] = server_id
    evaluators = _evaluators([a for a in item.assertions if isinstance(a, str)])
    if evaluators:
        body["evaluators"] = evaluators
    if item.execution_policy is not None:
        body["execution_policy"] = item.execution_policy.model_dump(exclude_none=True)
    return body
