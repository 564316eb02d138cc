"""`suite push` / `suite pull` round-trip a natural-language suite through the Opik stand-in."""

from __future__ import annotations

from pathlib import Path

import pytest
from opik_rest_standin import OpikStandIn, opik_standin
from suite_testkit import write_suite
from typer.testing import CliRunner

from opik_connect.cli import app
from opik_connect.connect.suites.suite_files import load_suite

SUITE = """
description: support answers
global_assertions: [The answer is polite]
global_execution_policy: {runs_per_item: 3, pass_threshold: 2}
items:
  - id: refund
    description: refund window
    data: {question: "Can I get a refund?"}
    assertions: [It states the 30-day refund window]
    execution_policy: {runs_per_item: 1, pass_threshold: 1}
  - id: hello
    data: {question: hi}
"""


@pytest.fixture
def opik(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OpikStandIn:
    with opik_standin(api_key="key-1", workspace="team") as standin:
        monkeypatch.setenv("OPIK_CONFIG_PATH", str(tmp_path / "none"))
        monkeypatch.setenv("OPIK_URL_OVERRIDE", standin.url)
        monkeypatch.setenv("OPIK_API_KEY", "key-1")
        monkeypatch.setenv("OPIK_WORKSPACE", "team")
        yield standin


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["suite", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_push_then_pull_round_trips_a_natural_language_suite(
    tmp_path: Path, opik: OpikStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # the SDK's judge imports litellm
    from opik.evaluation.suite_evaluators.llm_judge import LLMJudge
    from opik.evaluation.suite_evaluators.llm_judge import config as judge_config

    here, there = tmp_path / "here", tmp_path / "there"
    write_suite(here, "support", SUITE)
    there.mkdir()
    assert cli("push", "support", "--root", str(here)) == (
        0,
        "created suite support (2 item(s)) on Opik\n",
    )
    (dataset,) = opik.datasets.values()
    assert dataset["type"] == "evaluation_suite"
    (version,) = opik.versions[dataset["id"]]
    parsed = judge_config.LLMJudgeConfig.model_validate(version["evaluators"][0]["config"])
    assert LLMJudge.from_config(parsed, track=False).assertions == ["The answer is polite"]
    code, output = cli("pull", "support", "--root", str(there))
    assert code == 0, output
    pulled = load_suite(there, "support")
    assert pulled.call == "run_tests", "a pulled suite calls its task as opik.run_tests does"
    assert pulled == load_suite(here, "support").model_copy(update={"call": "run_tests"})
    write_suite(here, "support", SUITE.split("  - id: hello")[0])
    assert cli("push", "support", "--root", str(here))[1].startswith("updated suite support")
    assert len(opik.items) == 1, "an item gone here is gone there"
    assert cli("pull", "support", "--root", str(there))[0] == 2, "no overwrite without --force"
    assert cli("pull", "support", "--force", "--root", str(there))[0] == 0
    assert [i.id for i in load_suite(there, "support").items] == ["refund"]


def test_deterministic_assertions_are_refused_by_name_or_left_out(
    tmp_path: Path, opik: OpikStandIn
) -> None:
    write_suite(
        tmp_path,
        "mixed",
        """
        items:
          - id: a
            data: {q: x}
            assertions: [{contains: refund}, Mentions the policy]
        """,
    )
    code, output = cli("push", "mixed", "--root", str(tmp_path))
    assert code == 2 and "item a" in output and '"contains": "refund"' in output
    assert opik.datasets == {}
    code, output = cli("push", "mixed", "--nl-only", "--root", str(tmp_path))
    assert code == 0 and "left out" in output
    (item,) = opik.items.values()
    assert item["evaluators"][0]["config"]["schema"][0]["description"] == "Mentions the policy"


def test_pull_force_keeps_what_opik_cannot_hold(tmp_path: Path, opik: OpikStandIn) -> None:
    local = """
entrypoint: "support.bot:answer"
global_assertions: [{contains: thanks}]
items:
  - id: refund
    data: {question: "Can I get a refund?"}
    assertions: [Old wording, {regex: "30.day"}]
  - id: gone
    data: {question: bye}
    assertions: [{contains: bye}]
"""
    here, there = tmp_path / "here", tmp_path / "there"
    write_suite(here, "support", SUITE)
    assert cli("push", "support", "--root", str(here))[0] == 0
    write_suite(there, "support", local)
    code, output = cli("pull", "support", "--force", "--root", str(there))
    assert code == 0, output
    assert "kept entrypoint support.bot:answer" in output
    pulled = load_suite(there, "support")
    assert pulled.entrypoint == "support.bot:answer"
    assert dumped(pulled.global_assertions) == ["The answer is polite", {"contains": "thanks"}]
    by_id = {item.id: item for item in pulled.items}
    assert set(by_id) == {"refund", "hello"}, "the server's items, not the local ones"
    assert dumped(by_id["refund"].assertions) == [
        "It states the 30-day refund window",
        {"regex": "30.day"},
    ]
    assert by_id["hello"].assertions == []
    (there / ".opik" / "suites" / "support.yaml").write_text("items: [", encoding="utf-8")
    code, output = cli("pull", "support", "--force", "--root", str(there))
    assert code == 0 and "kept nothing: the local file did not load" in output
    assert load_suite(there, "support").entrypoint is None


def dumped(assertions: list) -> list:
    return [a if isinstance(a, str) else a.model_dump(exclude_defaults=True) for a in assertions]


def test_pull_of_a_missing_suite_and_a_bad_key_are_named(
    tmp_path: Path, opik: OpikStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = cli("pull", "nope", "--root", str(tmp_path))
    assert code == 2 and "no test suite 'nope'" in output
    monkeypatch.setenv("OPIK_API_KEY", "wrong")
    code, output = cli("pull", "nope", "--root", str(tmp_path))
    assert code == 2 and "HTTP 401" in output
