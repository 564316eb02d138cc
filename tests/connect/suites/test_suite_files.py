"""Suite files: Opik TestSuite fields, and errors that say which file, line and field."""

from pathlib import Path

import pytest

from opik_connect.connect.suites.assertions import ContainsAssertion, JsonPathAssertion
from opik_connect.connect.suites.suite_files import (
    Suite,
    SuiteItem,
    list_suites,
    load_suite,
    save_suite,
)
from opik_connect.protocol import BridgeError, ErrorCode
from tests.suite_testkit import write_suite

GOOD = """
    name: qa
    description: checks
    global_assertions:
      - max_chars: 100
    global_execution_policy: {runs_per_item: 3, pass_threshold: 2}
    items:
      - id: a
        data: {question: hi}
        assertions:
          - contains: hi
          - "The answer is polite"
          - {json_path: $.meta.n, equals: 3}
      - id: b
        execution_policy: {runs_per_item: 5}
"""


def test_valid_file_loads_with_policies_merged(tmp_path: Path) -> None:
    write_suite(tmp_path, "qa", GOOD)
    suite = load_suite(tmp_path, "qa")
    a, b = suite.items
    assert a.assertions[0] == ContainsAssertion(contains="hi")
    assert a.assertions[1] == "The answer is polite"
    assert isinstance(a.assertions[2], JsonPathAssertion)
    assert (suite.policy_for(a).runs_per_item, suite.policy_for(a).pass_threshold) == (3, 2)
    # An item override replaces only the fields it names.
    assert (suite.policy_for(b).runs_per_item, suite.policy_for(b).pass_threshold) == (5, 2)


@pytest.mark.parametrize(
    ("body", "line", "field", "message"),
    [
        (
            GOOD.replace("- contains: hi", "- contians: hi"),
            10,
            "items[0].assertions[0]",
            "assertion",
        ),
        (
            GOOD.replace("pass_threshold: 2}", "pass_threshold: 4}"),
            5,
            "global_execution_policy",
            "exceeds",
        ),
        (GOOD.replace("id: b", "id: a"), 13, "items[1].id", "duplicate"),
        (GOOD.replace("data: {question: hi}", "data: [hi]"), 8, "items[0].data", "dictionary"),
        (GOOD.replace("description: checks", "descripton: checks"), 2, "descripton", "Extra"),
        (
            GOOD.replace("- contains: hi", "- regex: '(unclosed'"),
            10,
            "items[0].assertions[0].regex",
            "regular",
        ),
        (
            GOOD.replace("{json_path: $.meta.n, equals: 3}", "{json_path: $.meta.n}"),
            12,
            "items[0].assertions[2]",
            "exactly one",
        ),
        (GOOD.replace("name: qa", "name: other"), 1, "name", "file name"),
        (GOOD.replace("items:", "items: [oops"), 7, "", "YAML syntax"),
    ],
)
def test_bad_file_error_names_file_line_and_field(
    tmp_path: Path, body: str, line: int, field: str, message: str
) -> None:
    path = write_suite(tmp_path, "qa", body)
    with pytest.raises(BridgeError) as caught:
        load_suite(tmp_path, "qa")
    error = caught.value
    assert error.code == ErrorCode.SUITE_INVALID
    assert error.details["file"] == str(path)
    assert error.details["line"] == line, error.message
    assert error.details["field"] == field
    assert message in error.message
    assert error.message.startswith(f"{path}:{line}")


def test_item_override_that_breaks_the_threshold_points_at_the_item(tmp_path: Path) -> None:
    write_suite(
        tmp_path,
        "qa",
        GOOD + "      - id: c\n        execution_policy: {pass_threshold: 5}\n",
    )
    with pytest.raises(BridgeError) as caught:
        load_suite(tmp_path, "qa")
    assert caught.value.details["field"] == "items[2].execution_policy"
    assert caught.value.details["line"] == 16


def test_missing_suite_lists_the_known_ones(tmp_path: Path) -> None:
    write_suite(tmp_path, "qa", GOOD)
    with pytest.raises(BridgeError) as caught:
        load_suite(tmp_path, "nope")
    assert caught.value.code == ErrorCode.SUITE_NOT_FOUND
    assert "qa" in caught.value.message
    with pytest.raises(BridgeError) as bad_name:
        load_suite(tmp_path, "../etc/passwd")
    assert bad_name.value.code == ErrorCode.INVALID_ARGS


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    write_suite(tmp_path, "qa", GOOD)
    suite = load_suite(tmp_path, "qa")
    extra = SuiteItem(
        id="new", data={"q": 1}, assertions=["is kind", {"json_path": "x", "equals": None}]
    )
    save_suite(
        tmp_path,
        Suite.model_validate(
            {**suite.model_dump(exclude_unset=True), "items": [*suite.items, extra]}
        ),
    )
    again = load_suite(tmp_path, "qa")
    assert [i.id for i in again.items] == ["a", "b", "new"]
    assert again.items[2].assertions[1].checks_equality
    assert again.global_execution_policy.pass_threshold == 2
    assert list_suites(tmp_path) == ["qa"]
