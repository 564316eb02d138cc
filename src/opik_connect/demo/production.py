"""The demo's log step: production traffic of the example agent, logged to the platform's sink.

With the `opik` SDK importable in the demo's interpreter, a small support-desk app (APP, run in a
subprocess in the project copy) answers two customers with the agent's real `@opik.track` code,
the SDK logging each trace to the sink, then logs the customers' feedback with the SDK's client.
Without it, the SDK's requests recorded by `python -m fixtures.demo.record_production` are posted
to the sink as they are: the same REST calls, said on screen.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from opik_connect.connect.child_process import DEVNULL, PIPE, spawn_child
from opik_connect.connect.suites.suite_tracing import TraceSink
from opik_connect.demo.scenario import DemoError

PRODUCTION_PROJECT = "trailhead-support-agent"
RECORDING = Path("demo") / "production_requests.json"
APP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Customer:
    """One production conversation and what the customer said of the answer."""

    slug: str
    data: dict[str, Any]
    satisfied: float
    reason: str


FAILING = Customer(
    "failing",
    {
        "question": "My order A1003 arrived in March. Can I still return it for a refund?",
        "customer_id": "C-1003",
    },
    0.0,
    "Customer: I asked whether I can still return it, not when it arrived.",
)
SUCCEEDING = Customer(
    "succeeding",
    {"question": "Can I return an item I bought for a refund?"},
    1.0,
    "",
)
CUSTOMERS = (FAILING, SUCCEEDING)

APP = r"""
import json, sys
import opik
from opik import id_helpers
from support_agent.agent import answer_question

customers = json.loads(sys.argv[1])
client = opik.Opik()
ids = {}
for customer in customers:
    ids[customer["slug"]] = trace_id = id_helpers.generate_id()
    answer_question(
        **customer["data"],
        opik_args={"trace": {"id": trace_id, "tags": ["support-agent", "production"]}},
    )
opik.flush_tracker()
client.log_traces_feedback_scores([
    {"id": ids[c["slug"]], "name": "customer_satisfied", "value": c["satisfied"],
     "reason": c["reason"] or None}
    for c in customers
])
client.flush()
print(json.dumps({"ids": ids, "sdk": opik.__version__}))
"""
"""The support desk: the agent answers, the SDK traces it; the customers' verdicts follow."""


@dataclass(frozen=True)
class LoggedTraffic:
    """The trace ids by customer slug, and who logged them (the line the screen shows)."""

    ids: dict[str, str]
    by: str
    sdk: str


def customers_json() -> str:
    return json.dumps(
        [
            {"slug": c.slug, "data": c.data, "satisfied": c.satisfied, "reason": c.reason}
            for c in CUSTOMERS
        ]
    )


async def log_with_sdk(project: Path, sink: TraceSink, python: str) -> LoggedTraffic:
    """Run APP in the project copy with the SDK pointed at the sink, as `traces env` says."""
    env = {
        **os.environ,
        "OPIK_URL_OVERRIDE": sink.url,
        "OPIK_API_KEY": sink.token,
        "OPIK_WORKSPACE": "default",
        "OPIK_PROJECT_NAME": PRODUCTION_PROJECT,
        "OPIK_TRACK_DISABLE": "false",
        "OPIK_ANALYTICS_ENABLE": "false",  # the demo reaches no network
        "OPIK_SENTRY_ENABLE": "false",
        "PYTHONDONTWRITEBYTECODE": "1",  # the project copy stays clean
        "PYTHONPATH": str(project),
    }
    process = await spawn_child(
        python,
        "-c",
        APP,
        customers_json(),
        cwd=project,
        env=env,
        stdin=DEVNULL,
        stdout=PIPE,
        stderr=PIPE,
    )
    try:
        async with asyncio.timeout(APP_TIMEOUT_S):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise DemoError(f"the support-desk app did not finish in {APP_TIMEOUT_S:.0f}s") from None
    if process.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        raise DemoError("the support-desk app failed: " + " | ".join(tail))
    answer = json.loads(out.decode().strip().splitlines()[-1])
    by = f"the opik SDK {answer['sdk']} (the real one), in {python}"
    return LoggedTraffic(answer["ids"], by, answer["sdk"])


async def replay_recording(fixtures: Path, sink: TraceSink) -> LoggedTraffic:
    """Post the SDK's recorded requests to the sink, in their order, with the sink's key."""
    path = fixtures / RECORDING
    try:
        recording = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DemoError(f"cannot read the recorded SDK requests {path}: {exc}") from None
    base = sink.url.rstrip("/")
    async with httpx.AsyncClient(headers={"Authorization": sink.token}) as client:
        for request in recording["requests"]:
            response = await client.request(
                request["method"], base + request["path"], json=request["body"]
            )
            if response.status_code >= 300:
                raise DemoError(
                    f"the sink refused a recorded {request['method']} {request['path']}: "
                    f"{response.status_code} {response.text[:200]}"
                )
    return LoggedTraffic(
        recording["ids"],
        f"a recorded stand-in (opik is not installed in {sys.executable}): the requests the "
        f"opik SDK {recording['sdk']} made, replayed from fixtures/{RECORDING.as_posix()}",
        recording["sdk"],
    )


def sdk_importable() -> bool:
    """Whether `opik` imports in the demo's interpreter (a None in sys.modules blocks it)."""
    try:
        return importlib.util.find_spec("opik") is not None
    except (ImportError, ValueError):
        return False


async def log_production(
    project: Path, fixtures: Path, sink: TraceSink, *, use_sdk: bool | None = None
) -> LoggedTraffic:
    """The real SDK when the demo's interpreter can import it, else the recorded stand-in."""
    if use_sdk is None:
        use_sdk = sdk_importable()
    if use_sdk:
        return await log_with_sdk(project, sink, sys.executable)
    return await replay_recording(fixtures, sink)
