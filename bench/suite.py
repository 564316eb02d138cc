"""A suite of 40 items x 2 runs at 8 workers against the same suite at 1 worker, same process.

The entrypoint takes 50 ms; the judge is the real Anthropic SDK talking to the scripted Messages
API (fixtures/scripted_messages_api.py), slowed to answer each request in 200 ms and served from its
own process (as a real API would be), so it does not compete with the runner for the GIL. A short
warm-up run goes first so neither timed run pays for first imports.
Run: /tmp/venv/bin/python bench/suite.py [--items 40] [--workers 8]
Prints both wall times and their ratio (target: >= 6x with 8 workers). Not part of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixtures.scripted_messages_api import ScriptedMessagesAPI, tool_turn
from opik_connect.connect.suites.llm_judge import VERDICT_TOOL, AnthropicJudge
from opik_connect.connect.suites.suite_runner import run_suite

JUDGE_DELAY_S = 0.2
AGENT = """
import time
from opik import track

@track(entrypoint=True)
def answer(question: str) -> str:
    time.sleep(0.05)
    return "answer to " + question
"""


class SlowScriptedAPI(ScriptedMessagesAPI):
    """Each reply takes JUDGE_DELAY_S, like a model would (the server is threaded)."""

    def _reply(self, turn: dict[str, Any] | None, body: dict[str, Any]) -> tuple[int, dict]:
        time.sleep(JUDGE_DELAY_S)
        return super()._reply(turn, body)


def serve_judge() -> None:
    """`--serve`: the slow scripted judge; prints its URL, serves until stdin closes."""
    verdict = {"verdicts": [{"index": 1, "value": True, "reason": "ok", "confidence": 1}]}
    with SlowScriptedAPI([tool_turn(VERDICT_TOOL, verdict) | {"repeat": True}]) as api:
        print(api.url, flush=True)
        sys.stdin.read()


def make_project(root: Path, items: int) -> None:
    (root / "agent.py").write_text(AGENT)
    lines = [
        "name: bench",
        "global_execution_policy: {runs_per_item: 2, pass_threshold: 2}",
        "items:",
    ]
    for n in range(items):
        lines.append(
            f"  - {{id: item-{n}, data: {{question: q{n}}}, "
            f'assertions: [{{contains: q{n}}}, "The answer answers question {n}"]}}'
        )
    (root / ".opik" / "suites").mkdir(parents=True)
    (root / ".opik" / "suites" / "bench.yaml").write_text("\n".join(lines) + "\n")


async def timed(
    root: Path, judge: AnthropicJudge, workers: int, items: list[str] | None = None
) -> float:
    started = time.perf_counter()
    summary = await run_suite(root, "bench", workers=workers, judge=judge, item_ids=items)
    elapsed = time.perf_counter() - started
    assert summary.status == "passed", summary.model_dump_json(indent=1)[:2000]
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_judge()
        return
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["OPIK_CONNECT_STATE_DIR"] = str(Path(tmp) / "state")
        root = Path(tmp) / "proj"
        root.mkdir()
        make_project(root, args.items)
        server = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--serve",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert server.stdout is not None and server.stdin is not None
        url = (await server.stdout.readline()).decode().strip()
        judge = AnthropicJudge(model="bench", api_key="bench", base_url=url)
        try:
            await timed(root, judge, args.workers, items=["item-0", "item-1"])
            parallel = await timed(root, judge, args.workers)
            serial = await timed(root, judge, 1)
        finally:
            await judge.aclose()
            server.stdin.close()
            await server.wait()
    runs = args.items * 2
    print(f"{runs} runs, entrypoint 50 ms, judge {JUDGE_DELAY_S * 1000:.0f} ms")
    print(f"--workers {args.workers}: {parallel:.2f} s")
    print(f"--workers 1: {serial:.2f} s")
    print(f"speed-up: {serial / parallel:.1f}x (target >= 6x)")


if __name__ == "__main__":
    asyncio.run(main())
