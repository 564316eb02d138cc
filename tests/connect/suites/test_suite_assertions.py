"""Deterministic assertions: what they read (`output` as text, json_path the whole result)."""

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from opik_connect.connect.suites.assertions import Assertion, evaluate, parse_json_path

RESULT: dict[str, Any] = {
    "output": "Refunds are accepted within 30 days of delivery.",
    "sources": ["refunds", "shipping"],
    "order": {"id": "A1002", "items": [{"sku": "tent", "qty": 2}], "note": None},
}
ADAPTER: TypeAdapter[Any] = TypeAdapter(Assertion)


def check(raw: Any, result: dict[str, Any] = RESULT) -> tuple[str, str]:
    verdict = evaluate(ADAPTER.validate_python(raw), result)
    return verdict.status, verdict.reason


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ({"contains": "30 days"}, "passed"),
        ({"contains": "60 days"}, "failed"),
        ({"not_contains": "Question:"}, "passed"),
        ({"not_contains": "Refunds"}, "failed"),
        ({"regex": r"within \d+ days"}, "passed"),
        ({"regex": r"^\d+$"}, "failed"),
        ({"equals": "Refunds are accepted within 30 days of delivery."}, "passed"),
        ({"equals": "Refunds"}, "failed"),
        ({"max_chars": 48}, "passed"),
        ({"max_chars": 47}, "failed"),
        ({"json_path": "$.order.id", "equals": "A1002"}, "passed"),
        ({"json_path": "order.items[0].qty", "equals": 2}, "passed"),
        ({"json_path": "$.order['note']", "equals": None}, "passed"),
        ({"json_path": "$.order.id", "equals": "A1001"}, "failed"),
        ({"json_path": "$.sources", "contains": "refunds"}, "passed"),
        ({"json_path": "$.sources", "contains": "warranty"}, "failed"),
        ({"json_path": "$.order.id", "contains": "100"}, "passed"),
        ({"json_path": "$.order", "contains": "items"}, "passed"),
        ({"json_path": "$.sources[5]", "equals": "x"}, "failed"),
        ({"json_path": "$.missing.deeper", "contains": "x"}, "failed"),
    ],
)
def test_each_deterministic_assertion(raw: dict[str, Any], status: str) -> None:
    got, reason = check(raw)
    assert got == status
    assert (reason == "") == (status == "passed")


def test_text_assertions_read_non_string_output_as_json() -> None:
    result = {"output": {"answer": "yes", "n": 3}}
    assert check({"contains": '"answer": "yes"'}, result)[0] == "passed"
    assert check({"equals": {"answer": "yes", "n": 3}}, result)[0] == "passed"
    assert check({"equals": {"answer": "no", "n": 3}}, result)[0] == "failed"
    assert check({"max_chars": 5}, result)[0] == "failed"


def test_reasons_say_what_was_wrong() -> None:
    assert "path not found" not in check({"json_path": "$.nope", "equals": 1})[1]
    assert "$.nope not found" in check({"json_path": "$.nope", "equals": 1})[1]
    assert "60 days" in check({"contains": "60 days"})[1]
    assert "A1002" in check({"json_path": "$.order.id", "equals": "A1001"})[1]


@pytest.mark.parametrize(
    "raw",
    [
        {"contains": "a", "regex": "b"},
        {"contanis": "a"},
        {"json_path": "$.a"},
        {"json_path": "$.a", "equals": 1, "contains": 1},
        {"json_path": "$..a", "equals": 1},
        {"max_chars": -1},
        {"regex": "("},
        42,
    ],
)
def test_malformed_assertions_are_refused(raw: Any) -> None:
    with pytest.raises(ValidationError):
        ADAPTER.validate_python(raw)


def test_json_path_subset() -> None:
    assert parse_json_path("$.a.b[0]['c d']") == ["a", "b", 0, "c d"]
    assert parse_json_path("a") == ["a"]
    assert parse_json_path("$") == []
