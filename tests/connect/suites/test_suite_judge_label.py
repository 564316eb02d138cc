"""A run names its judge only when an assertion needed one: the CLI and a fix-branch rerun (both
build the project's judge when a key is set) agree on `judge: none` for deterministic suites."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opik_connect.connect.suites.llm_judge import JudgeVerdict
from opik_connect.connect.suites.suite_runner import run_suite
from tests.suite_testkit import make_project, suite_env

__all__ = ["suite_env"]
pytestmark = pytest.mark.timeout(30)

DETERMINISTIC = """
name: s
items:
  - {id: a, data: {question: refunds}, assertions: [{contains: refunds}]}
"""
NATURAL = """
name: s
items:
  - {id: a, data: {question: refunds}, assertions: [{contains: refunds}]}
  - {id: b, data: {question: refunds}, assertions: ["Polite"]}
"""


class AgreeingJudge:
    """Says yes to everything; counts its calls."""

    label = "fake:judge-1"

    def __init__(self) -> None:
        self.calls = 0

    async def judge(
        self, *, input: dict[str, Any], output: Any, assertions: list[str]
    ) -> list[JudgeVerdict]:
        self.calls += 1
        return [JudgeVerdict(value=True, reason="fine") for _ in assertions]


async def test_no_natural_language_assertion_means_judge_none(suite_env: Path) -> None:
    root = make_project(suite_env, DETERMINISTIC)
    judge = AgreeingJudge()
    summary = await run_suite(root, "s", judge=judge, workers=1)
    assert (summary.status, summary.judge, judge.calls) == ("passed", "none", 0)


async def test_auto_judge_with_a_key_still_says_none_for_a_deterministic_suite(
    suite_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fix-branch rerun's path: `judge="auto"` builds anthropic:<model> from the key."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-unused")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    root = make_project(suite_env, DETERMINISTIC)
    summary = await run_suite(root, "s", workers=1)
    assert (summary.status, summary.judge) == ("passed", "none")


async def test_a_natural_language_assertion_names_the_judge(suite_env: Path) -> None:
    root = make_project(suite_env, NATURAL)
    judge = AgreeingJudge()
    summary = await run_suite(root, "s", judge=judge, workers=1)
    assert (summary.status, summary.judge, judge.calls) == ("passed", "fake:judge-1", 1)
