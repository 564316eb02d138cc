"""Assertions a suite item makes about one run, and the deterministic ones' evaluation.

What each assertion looks at (documented once, here):
- text assertions (`contains`, `not_contains`, `regex`, `max_chars`) read the run's `output` field,
  as is when it is a string, else as JSON text;
- `equals` compares the `output` field: against its text when the expected value is a string,
  structurally otherwise;
- `json_path` reads the whole result dict (`$.output.status`, `$.output.items[0]`, `output.x`).
A natural-language assertion is a plain string, judged by the LLM judge (llm_judge.py).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from opik_connect.protocol import AssertionVerdict

_MISSING = object()


class _Deterministic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def describe(self) -> str:
        return json.dumps(self.model_dump(exclude_unset=True), ensure_ascii=False)


class ContainsAssertion(_Deterministic):
    contains: str


class NotContainsAssertion(_Deterministic):
    not_contains: str


class RegexAssertion(_Deterministic):
    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class EqualsAssertion(_Deterministic):
    equals: Any


class JsonPathAssertion(_Deterministic):
    json_path: str
    equals: Any = None
    contains: Any = None

    @field_validator("json_path")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_json_path(value)
        return value

    @model_validator(mode="after")
    def _one_check(self) -> JsonPathAssertion:
        if ("equals" in self.model_fields_set) == ("contains" in self.model_fields_set):
            raise ValueError("json_path needs exactly one of 'equals' or 'contains'")
        return self

    @property
    def checks_equality(self) -> bool:
        """Whether `equals` was given (it may be null, so presence is what counts)."""
        return "equals" in self.model_fields_set


class MaxCharsAssertion(_Deterministic):
    max_chars: int = Field(ge=0)


DeterministicAssertion = (
    ContainsAssertion
    | NotContainsAssertion
    | RegexAssertion
    | EqualsAssertion
    | JsonPathAssertion
    | MaxCharsAssertion
)

_KINDS = ("contains", "not_contains", "regex", "equals", "max_chars")


def _assertion_kind(value: Any) -> str | None:
    """Pick the assertion model from the keys, so a typo yields one clear error, not six."""
    if isinstance(value, str):
        return "llm"
    if isinstance(value, BaseModel):
        return assertion_kind(value)  # type: ignore[arg-type]
    if not isinstance(value, dict):
        return None
    if "json_path" in value:
        return "json_path"
    found = [key for key in _KINDS if key in value]
    return found[0] if len(found) == 1 else None


Assertion = Annotated[
    Annotated[str, Tag("llm")]
    | Annotated[ContainsAssertion, Tag("contains")]
    | Annotated[NotContainsAssertion, Tag("not_contains")]
    | Annotated[RegexAssertion, Tag("regex")]
    | Annotated[EqualsAssertion, Tag("equals")]
    | Annotated[JsonPathAssertion, Tag("json_path")]
    | Annotated[MaxCharsAssertion, Tag("max_chars")],
    Discriminator(
        _assertion_kind,
        custom_error_type="invalid_assertion",
        custom_error_message=(
            "an assertion is a plain string (natural language) or one of {contains}, "
            "{not_contains}, {regex}, {equals}, {json_path, equals|contains}, {max_chars}"
        ),
    ),
]


def assertion_kind(assertion: str | DeterministicAssertion) -> str:
    if isinstance(assertion, str):
        return "llm"
    if isinstance(assertion, JsonPathAssertion):
        return "json_path"
    return next(iter(assertion.model_dump(exclude_unset=True)))


def describe(assertion: str | DeterministicAssertion) -> str:
    return assertion if isinstance(assertion, str) else assertion.describe()


def output_text(output: Any) -> str:
    """The text that text assertions read: a string as is, anything else as JSON."""
    if isinstance(output, str):
        return output
    return json.dumps(output, ensure_ascii=False, default=str)


_PATH_TOKEN = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]")


def parse_json_path(path: str) -> list[str | int]:
    """A small JSONPath subset: `$.a.b[0]['c d']`; the leading `$` (or `$.`) is optional."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    if text and not text.startswith((".", "[")):
        text = "." + text
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _PATH_TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"unsupported json_path {path!r} at {text[pos:]!r}")
        name, index, quoted = match.groups()
        parts.append(int(index) if index is not None else (name or quoted))
        pos = match.end()
    return parts


def resolve_json_path(document: Any, path: str) -> Any:
    """The value at `path`, or _MISSING when any step is absent."""
    current = document
    for part in parse_json_path(path):
        in_list = isinstance(current, list) and isinstance(part, int)
        in_dict = isinstance(current, dict) and isinstance(part, str)
        if not (
            (in_list and -len(current) <= part < len(current)) or (in_dict and part in current)
        ):
            return _MISSING
        current = current[part]
    return current


def _contains(container: Any, needle: Any) -> bool:
    if isinstance(container, str):
        return str(needle) in container
    if isinstance(container, list | dict):
        return needle in container
    return False


def evaluate(assertion: DeterministicAssertion, result: dict[str, Any]) -> AssertionVerdict:
    """Check one deterministic assertion against a run's result dict: free and reproducible."""
    output = result.get("output")
    text = output_text(output)
    ok: bool
    reason: str
    match assertion:
        case ContainsAssertion(contains=needle):
            ok = needle in text
            reason = "" if ok else f"output does not contain {needle!r}"
        case NotContainsAssertion(not_contains=needle):
            ok = needle not in text
            reason = "" if ok else f"output contains {needle!r}"
        case RegexAssertion(regex=pattern):
            ok = re.search(pattern, text) is not None
            reason = "" if ok else f"output does not match /{pattern}/"
        case EqualsAssertion(equals=expected):
            ok = text == expected if isinstance(expected, str) else output == expected
            reason = "" if ok else f"output {_short(output)} != {_short(expected)}"
        case MaxCharsAssertion(max_chars=limit):
            ok = len(text) <= limit
            reason = "" if ok else f"output has {len(text)} chars, more than {limit}"
        case JsonPathAssertion():
            ok, reason = _evaluate_json_path(assertion, result)
    return AssertionVerdict(
        assertion=describe(assertion),
        kind=assertion_kind(assertion),
        status="passed" if ok else "failed",
        reason=reason,
    )


def _evaluate_json_path(assertion: JsonPathAssertion, result: dict[str, Any]) -> tuple[bool, str]:
    value = resolve_json_path(result, assertion.json_path)
    if value is _MISSING:
        return False, f"{assertion.json_path} not found in the result"
    if assertion.checks_equality:
        if value == assertion.equals:
            return True, ""
        return (
            False,
            f"{assertion.json_path} is {_short(value)}, expected {_short(assertion.equals)}",
        )
    if _contains(value, assertion.contains):
        return True, ""
    return False, f"{assertion.json_path} ({_short(value)}) does not contain {assertion.contains!r}"


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
