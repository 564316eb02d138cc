"""The LLM judge against the scripted Messages API: one call per run, a forced verdict tool, and
every way the verdict can go missing ends as `error`, never as a pass."""

from pathlib import Path

import pytest

from fixtures.scripted_messages_api import ScriptedMessagesAPI, error_turn, text_turn, tool_turn
from opik_connect.connect.suites.llm_judge import (
    VERDICT_TOOL,
    AnthropicJudge,
    JudgeError,
    judge_from_config,
)
from opik_connect.connect.suites.suite_runner import run_suite
from tests.suite_testkit import make_project, suite_env

__all__ = ["suite_env"]


def verdict(index: int, value: object, reason: str = "because") -> dict[str, object]:
    return {"index": index, "value": value, "reason": reason, "confidence": 0.8}


async def test_request_holds_input_output_assertions_and_forces_the_tool() -> None:
    turn = tool_turn(VERDICT_TOOL, {"verdicts": [verdict(2, False, "no limit"), verdict(1, True)]})
    with ScriptedMessagesAPI([turn]) as api:
        judge = AnthropicJudge(model="judge-m", api_key="k", base_url=api.url, max_retries=0)
        got = await judge.judge(
            input={"question": "Can I get a refund?"},
            output="We ship in 3 days.",
            assertions=["The answer is polite", "It states the refund time limit"],
        )
        await judge.aclose()
    assert [(v.value, v.reason, v.confidence) for v in got] == [
        (True, "because", 0.8),
        (False, "no limit", 0.8),
    ]
    (request,) = api.requests
    assert request["model"] == "judge-m"
    assert request["tool_choice"] == {"type": "tool", "name": VERDICT_TOOL}
    schema = request["tools"][0]["input_schema"]["properties"]["verdicts"]["items"]
    assert set(schema["required"]) == {"index", "value", "reason", "confidence"}
    prompt = request["messages"][-1]["content"]
    assert "Can I get a refund?" in prompt and "We ship in 3 days." in prompt
    assert "1. The answer is polite\n2. It states the refund time limit" in prompt


@pytest.mark.parametrize(
    ("turns", "message"),
    [
        ([tool_turn(VERDICT_TOOL, {"verdicts": [verdict(1, True)]})], "no verdict for assertion"),
        (
            [tool_turn(VERDICT_TOOL, {"verdicts": [verdict(1, "maybe"), verdict(2, True)]})],
            "unparseable",
        ),
        ([tool_turn(VERDICT_TOOL, {"answer": "yes"})], "unparseable"),
        (
            [tool_turn(VERDICT_TOOL, {"verdicts": [{"index": 1, "value": True, "reason": "r"}]})],
            "unparseable",
        ),
        ([tool_turn(VERDICT_TOOL, {"verdicts": [verdict(1, True)] * 2})], "two verdicts"),
        ([text_turn("Both hold.")], "without calling"),
        ([error_turn(500, "api_error")] * 3, "API error"),
    ],
)
@pytest.mark.timeout(30)
async def test_judge_errors(turns: list[dict[str, object]], message: str) -> None:
    with ScriptedMessagesAPI(turns) as api:
        judge = AnthropicJudge(model="m", api_key="k", base_url=api.url, max_retries=2)
        with pytest.raises(JudgeError, match=message):
            await judge.judge(input={}, output="x", assertions=["a", "b"])
        await judge.aclose()
    assert api.remaining == 0, "a 500 is retried (3 requests with max_retries=2)"


SUITE = """
name: s
global_assertions: ["The answer is polite"]
items:
  - id: judged-pass
    data: {question: alpha}
    assertions: [{contains: alpha}, "It mentions alpha"]
  - id: judged-fail
    data: {question: beta}
  - id: judge-silent
    data: {question: gamma}
  - id: deterministic-fail
    data: {question: delta}
    assertions: [{contains: nowhere}]
"""


@pytest.mark.timeout(30)
async def test_suite_with_a_judge_from_env_and_config(
    suite_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(suite_env, SUITE)
    (root / "pyproject.toml").write_text('[tool.opik-connect]\njudge-model = "judge-x"\n')
    turns = [
        tool_turn(VERDICT_TOOL, {"verdicts": [verdict(1, True), verdict(2, True)]}, match="alpha"),
        tool_turn(VERDICT_TOOL, {"verdicts": [verdict(1, False, "rude")]}, match="beta"),
        tool_turn(VERDICT_TOOL, {"verdicts": []}, match="gamma"),
        tool_turn(VERDICT_TOOL, {"verdicts": [verdict(1, True)]}, match="delta"),
    ]
    with ScriptedMessagesAPI(turns) as api:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        summary = await run_suite(root, "s", workers=2)
    assert summary.judge == "anthropic:judge-x"
    assert len(api.requests) == 4, "one judge call per run, all its assertions together"
    status = {i.item_id: i.runs[0].status for i in summary.items}
    assert status == {
        "judged-pass": "passed",
        "judged-fail": "failed",
        "judge-silent": "error",
        "deterministic-fail": "failed",
    }
    silent = next(i for i in summary.items if i.item_id == "judge-silent")
    assert not silent.passed
    assert silent.runs[0].assertions[0].status == "error"
    assert "no verdict" in silent.runs[0].assertions[0].reason
    failed = next(i for i in summary.items if i.item_id == "judged-fail").runs[0].assertions
    assert (failed[0].status, failed[0].reason, failed[0].confidence) == ("failed", "rude", 0.8)
    assert summary.status == "failed"


@pytest.mark.timeout(30)
async def test_without_a_key_judged_assertions_are_skipped_and_the_rest_still_run(
    suite_env: Path,
) -> None:
    root = make_project(suite_env, SUITE)
    assert judge_from_config(root) is None
    summary = await run_suite(root, "s", workers=2)
    assert summary.judge == "none"
    runs = {i.item_id: i.runs[0] for i in summary.items}
    assert runs["judged-pass"].status == "passed"
    assert [a.status for a in runs["judged-pass"].assertions] == ["skipped", "passed", "skipped"]
    assert {a.reason for a in runs["judged-pass"].assertions if a.kind == "llm"} == {"no judge"}
    assert runs["deterministic-fail"].status == "failed"
