"""Suite runs with the real opik SDK: every run's trace arrives, tagged, in the suite project."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from opik_rest_standin import opik_standin
from suite_testkit import git, write_suite

from opik_connect.connect.suites.suite_runner import default_workers, run_suite

AGENT = """
import opik
from opik import opik_context

@opik.track(entrypoint=True)
def answer(question: str) -> str:
    helper(question)
    opik_context.update_current_trace(metadata={"agent": "traced"})
    return "answer to " + question

@opik.track
def helper(question: str) -> str:
    return question.upper()
"""


@pytest.fixture
def traced_project(tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "shop"
    (root / "bot").mkdir(parents=True)
    (root / "bot" / "__init__.py").write_text("")
    (root / "bot" / "agent.py").write_text(AGENT)
    (root / "pyproject.toml").write_text(f'[tool.opik-connect]\npython = "{sys.executable}"\n')
    items = "\n".join(f"  - id: q{n}\n    data: {{question: q{n}}}" for n in range(10))
    write_suite(root, "smoke", f"items:\n{items}\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "start")
    for name in ("ANTHROPIC_API_KEY", "OPIK_API_KEY", "OPIK_WORKSPACE", "VIRTUAL_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPIK_CONFIG_PATH", str(tmp_path / "no.config"))
    monkeypatch.setenv("OPIK_SENTRY_ENABLE", "false")
    monkeypatch.setenv("OPIK_ANALYTICS_ENABLE", "false")
    monkeypatch.setenv("OPIK_PROJECT_NAME", "production")
    return root


async def test_every_run_is_traced_and_tagged_into_the_suite_project(
    traced_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    header: list[str] = []
    with opik_standin() as opik:
        monkeypatch.setenv("OPIK_URL_OVERRIDE", opik.url)
        summary = await run_suite(traced_project, "smoke", judge=None, header=header.extend)
    assert default_workers() > 1
    assert summary.status == "passed"
    assert header[0].startswith(f"agent python {sys.executable} ([tool.opik-connect] python")
    assert "opik 2." in header[1] and "project 'production-suites'" in header[1]
    traces = [t for t in opik.traces.values() if t.get("name") == "answer"]
    assert len(traces) == 10, "every run's trace arrived: the workers flushed before leaving"
    assert {t["project_name"] for t in traces} == {"production-suites"}
    commit = git(traced_project, "rev-parse", "HEAD")[:12]
    tags = sorted(sorted(t["tags"]) for t in traces)
    assert tags[0] == sorted(
        [
            "opik-connect-suite",
            "suite:smoke",
            "item:q0",
            "run:1",
            f"suite-run:{summary.run_id}",
            f"commit:{commit}",
        ]
    )
    assert {t["metadata"]["agent"] for t in traces} == {"traced"}
    assert {t["metadata"]["opik_connect"]["item_id"] for t in traces} == {
        f"q{n}" for n in range(10)
    }
    assert len([s for s in opik.spans.values() if s.get("name") == "helper"]) == 10
