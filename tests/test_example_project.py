"""The demo's example project: a real bug, a real fix, and committed files kept in step.

The demo's example project: its bug is real and visible, the scripted fix fixes it, and the
committed traces and scripts are exactly what their generators produce from the current files.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fixtures.record_example_traces import EXAMPLE_PROJECT, FAILING_RUN, TRACES_DIR, trace_id_for
from fixtures.scripted_messages_api import ScriptedMessagesAPI, load_script
from opik_connect.agent.traces.store import parse_trace_document
from opik_connect.config import load_project_config
from opik_connect.connect.suites.assertions import evaluate
from opik_connect.connect.suites.entrypoint import scan_entrypoints
from opik_connect.connect.suites.llm_judge import AnthropicJudge
from opik_connect.connect.suites.suite_files import Suite, load_suite
from opik_connect.demo.backends import (
    SCRIPT_IDS,
    SPAN_BUILD_PROMPT,
    TRACE_FAILING,
    TRACE_SUCCEEDING,
)

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "fixtures" / "demo"
SUITE = "customer-support-qa"
FAILING_ITEM = "refund-window"

_RUN_ITEMS = """
import json, sys
from support_agent.agent import answer_question
print(json.dumps({i["id"]: answer_question(**i["data"]) for i in json.load(sys.stdin)}))
"""


def run_items(tree: Path, suite: Suite) -> dict[str, dict[str, Any]]:
    """Each item's result from the agent in `tree`, in a fresh interpreter rooted there."""
    items = [{"id": item.id, "data": item.data} for item in suite.items]
    done = subprocess.run(
        [sys.executable, "-c", _RUN_ITEMS],
        cwd=tree,
        input=json.dumps(items),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(tree)},
    )
    return json.loads(done.stdout)


def failed_deterministic(suite: Suite, results: dict[str, dict]) -> dict[str, list[str]]:
    failed: dict[str, list[str]] = {}
    for item in suite.items:
        for assertion in suite.assertions_for(item):
            if isinstance(assertion, str):
                continue
            verdict = evaluate(assertion, results[item.id])
            if verdict.status != "passed":
                failed.setdefault(item.id, []).append(verdict.assertion)
    return failed


def ollie_turns() -> list[dict[str, Any]]:
    return load_script(DEMO / "ollie_session.json")


def proposed_edit() -> dict[str, str]:
    for turn in ollie_turns():
        for block in turn["message"]["content"]:
            if block.get("name") == "propose_change":
                (edit,) = block["input"]["edits"]
                return edit
    raise AssertionError("the scripted session proposes no change")


@pytest.fixture(scope="module")
def suite() -> Suite:
    return load_suite(EXAMPLE_PROJECT, SUITE)


@pytest.fixture(scope="module")
def fixed_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example with the scripted proposal applied, as the fix branch would hold."""
    tree = tmp_path_factory.mktemp("fixed") / "example_project"
    shutil.copytree(EXAMPLE_PROJECT, tree, ignore=shutil.ignore_patterns("__pycache__"))
    edit = proposed_edit()
    target = tree / edit["path"]
    source = target.read_text(encoding="utf-8")
    assert source.count(edit["old_string"]) == 1
    target.write_text(source.replace(edit["old_string"], edit["new_string"]), encoding="utf-8")
    return tree


@pytest.fixture(scope="module")
def results_before(suite: Suite) -> dict[str, dict]:
    return run_items(EXAMPLE_PROJECT, suite)


@pytest.fixture(scope="module")
def results_after(suite: Suite, fixed_tree: Path) -> dict[str, dict]:
    return run_items(fixed_tree, suite)


@pytest.mark.timeout(60)
def test_the_bug_fails_only_the_refund_item_on_a_deterministic_assertion(
    suite: Suite, results_before: dict[str, dict]
) -> None:
    refund = results_before[FAILING_ITEM]
    assert refund["sources"] == ["refunds"], "retrieval finds the policy..."
    assert "30 days" not in refund["output"], "...but the answer never sees it"
    assert "delivered on 18 November 2026" in refund["output"]
    assert failed_deterministic(suite, results_before) == {
        FAILING_ITEM: ['{"contains": "30 days"}']
    }


@pytest.mark.timeout(60)
def test_the_scripted_fix_makes_every_item_pass(
    suite: Suite, results_after: dict[str, dict]
) -> None:
    assert "within 30 days of delivery" in results_after[FAILING_ITEM]["output"]
    assert "Order A1002" in results_after[FAILING_ITEM]["output"]
    assert failed_deterministic(suite, results_after) == {}


def test_the_fix_is_one_line_in_one_file() -> None:
    edit = proposed_edit()
    source = (EXAMPLE_PROJECT / edit["path"]).read_text(encoding="utf-8")
    assert source.count(edit["old_string"]) == 1
    old, new = edit["old_string"].splitlines(), edit["new_string"].splitlines()
    assert len(old) == len(new)
    assert sum(a != b for a, b in zip(old, new, strict=True)) == 1


def test_suite_has_failing_case_and_both_kinds_of_global_assertion(suite: Suite) -> None:
    assert len(suite.items) >= 6
    assert FAILING_ITEM in {item.id for item in suite.items}
    kinds = {
        type(a).__name__ if not isinstance(a, str) else "natural" for a in suite.global_assertions
    }
    assert {"natural", "NotContainsAssertion", "MaxCharsAssertion"} <= kinds


def test_entrypoint_is_found_by_scan_and_by_config() -> None:
    (found,) = scan_entrypoints(EXAMPLE_PROJECT)
    configured = load_project_config(EXAMPLE_PROJECT).entrypoint
    assert f"{found.module}:{found.function}" == configured == "support_agent.agent:answer_question"


def test_example_runs_without_opik_and_ships_no_env_file() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "support_agent", "How do I cancel my subscription?"],
        cwd=EXAMPLE_PROJECT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(EXAMPLE_PROJECT)},
    )
    assert "Account settings" in json.loads(done.stdout)["output"]
    assert not list(EXAMPLE_PROJECT.glob(".env*"))


def regenerate(module: str, out: Path) -> None:
    """Run a fixtures generator module, writing into `out` instead of the committed files."""
    subprocess.run(
        [sys.executable, "-m", module, "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        timeout=30,
        check=True,
    )


@pytest.mark.timeout(60)
def test_committed_traces_are_what_the_recorder_writes(tmp_path: Path) -> None:
    regenerate("fixtures.record_example_traces", tmp_path)
    committed = sorted(p.name for p in TRACES_DIR.iterdir())
    assert committed == sorted(p.name for p in tmp_path.iterdir())
    assert len([name for name in committed if name.endswith(".json")]) >= 4
    _, mismatch, errors = filecmp.cmpfiles(TRACES_DIR, tmp_path, committed, shallow=False)
    assert mismatch == errors == []


@pytest.mark.timeout(60)
def test_committed_demo_scripts_are_what_make_scripts_writes(tmp_path: Path) -> None:
    regenerate("fixtures.demo.make_scripts", tmp_path)
    for name in ("ollie_session.json", "judge_script.json"):
        assert (tmp_path / name).read_text() == (DEMO / name).read_text(), name


def failing_record() -> Any:
    path = TRACES_DIR / f"{trace_id_for(FAILING_RUN)}.json"
    return parse_trace_document(json.loads(path.read_text()), str(path))


def test_failing_trace_shows_the_article_dropped_before_the_llm() -> None:
    record = failing_record()
    spans = {span.name: span for span in record.spans}
    root = spans["answer_question"]
    assert root.parent_span_id is None
    assert spans["compose_reply"].parent_span_id == root.id
    assert spans["build_prompt"].parent_span_id == spans["compose_reply"].id
    assert spans["lookup_order"].type == "tool"
    llm = spans["offline_model.generate"]
    assert (llm.type, llm.model, llm.parent_span_id) == (
        "llm",
        "support-offline-1",
        spans["compose_reply"].id,
    )
    assert "30 days" in json.dumps(spans["retrieve_articles"].output)
    assert "30 days" in json.dumps(spans["build_prompt"].input)
    assert "30 days" not in json.dumps(spans["build_prompt"].output)
    assert "30 days" not in json.dumps(llm.input)


def test_scripted_ollie_session_walks_the_flywheel_with_placeholder_ids() -> None:
    """The session's tool calls in order, and every trace or span id in it a placeholder the
    demo fills from its log step (tests/test_demo_e2e.py replays it against the real tools: a
    turn whose `match` is not in the real result leaves the session unanswered)."""
    turns = ollie_turns()
    calls = [
        next(b for b in t["message"]["content"] if b["type"] == "tool_use")
        for t in turns
        if t["message"]["stop_reason"] == "tool_use"
    ]
    assert [c["name"] for c in calls] == [
        "get_trace",
        "search_traces",
        "compare_traces",
        "get_span",
        "read_file",
        "search_files",
        "draft_test_case",
        "propose_change",
    ]
    text = json.dumps(turns)
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-", text), "a literal trace id"
    assert set(re.findall(r"\{\{[^}]+\}\}", text)) == set(SCRIPT_IDS)
    assert calls[2]["input"] == {"trace_id": TRACE_FAILING, "other_trace_id": TRACE_SUCCEEDING}
    assert calls[3]["input"] == {"span_id": SPAN_BUILD_PROMPT}


@pytest.mark.timeout(60)
async def test_scripted_judge_fails_the_buggy_answer_and_passes_the_fixed_ones(
    suite: Suite, results_before: dict[str, dict], results_after: dict[str, dict]
) -> None:
    """Served over real HTTP to the real judge client, exactly as the demo uses it."""
    with ScriptedMessagesAPI(load_script(DEMO / "judge_script.json")) as api:
        judge = AnthropicJudge(model="scripted", api_key="test", base_url=api.url, max_retries=0)
        try:
            for results, label in ((results_before, "before"), (results_after, "after")):
                for item in suite.items:
                    texts = [a for a in suite.assertions_for(item) if isinstance(a, str)]
                    verdicts = await judge.judge(
                        input=item.data, output=results[item.id]["output"], assertions=texts
                    )
                    expected = not (label == "before" and item.id == FAILING_ITEM)
                    assert [v.value for v in verdicts] == [expected] * len(texts), (label, item.id)
        finally:
            await judge.aclose()
        assert api.unmatched == []
