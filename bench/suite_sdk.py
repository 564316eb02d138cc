"""A 10-item suite whose agent imports the real opik SDK, at 1, 2 and 4 workers, against the same
suite whose agent imports no SDK, in one run. Traces go to the loopback Opik stand-in of the tests
(tests/opik_rest_standin.py); each timed run also counts the traces that arrived.
Run: .venv/bin/python bench/suite_sdk.py   (needs `opik` in the venv: pip install -e '.[test]')
Not part of the tests.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opik_rest_standin import opik_standin

from opik_connect.connect.suites.suite_runner import run_suite

WITH_SDK = """
import time
import opik

@opik.track(entrypoint=True)
def answer(question: str) -> str:
    time.sleep(0.05)
    return "answer to " + question
"""
NO_SDK = (
    "import time\n\ndef answer(question: str) -> str:\n    time.sleep(0.05)\n    return question\n"
)


def project(base: Path, name: str, agent: str) -> Path:
    root = base / name
    (root / "bot").mkdir(parents=True)
    (root / "bot" / "__init__.py").write_text("")
    (root / "bot" / "agent.py").write_text(agent)
    config = f'[tool.opik-connect]\npython = "{sys.executable}"\nentrypoint = "bot.agent:answer"\n'
    (root / "pyproject.toml").write_text(config)
    suites = root / ".opik" / "suites"
    suites.mkdir(parents=True)
    items = "\n".join(f"  - id: q{n}\n    data: {{question: q{n}}}" for n in range(10))
    (suites / "bench.yaml").write_text(f"items:\n{items}\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


async def timed(root: Path, workers: int) -> float:
    started = time.monotonic()
    summary = await run_suite(root, "bench", workers=workers, judge=None)
    assert summary.status == "passed", summary
    return time.monotonic() - started


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, opik_standin() as opik:
        os.environ.update(
            OPIK_CONNECT_STATE_DIR=str(Path(tmp) / "state"),
            OPIK_URL_OVERRIDE=opik.url,
            OPIK_CONFIG_PATH=str(Path(tmp) / "none"),
            OPIK_SENTRY_ENABLE="false",
            OPIK_ANALYTICS_ENABLE="false",
        )
        os.environ.pop("VIRTUAL_ENV", None)
        sdk, plain = project(Path(tmp), "sdk", WITH_SDK), project(Path(tmp), "plain", NO_SDK)
        print(f"cores: {os.cpu_count()}, 10 items x 1 run, agent sleeps 50 ms")
        for workers in (1, 2, 4):
            before = len(opik.traces)
            with_sdk = await timed(sdk, workers)
            arrived = len(opik.traces) - before
            without = await timed(plain, workers)
            print(
                f"{workers} worker(s): real SDK {with_sdk:.2f}s ({arrived}/10 traces), "
                f"no SDK {without:.2f}s (load {os.getloadavg()[0]:.1f})"
            )


if __name__ == "__main__":
    asyncio.run(main())
