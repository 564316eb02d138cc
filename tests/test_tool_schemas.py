"""The schemas the models are shown cannot drift from the pydantic models that check their calls.

Each tool's (and the judge's verdict tool's) schema is generated from its input model; here
hypothesis draws inputs from the schema itself and the model must accept every one of them, and
inputs the schema forbids (unknown fields, a missing required field, a wrong type) the model must
refuse. The generator knows a closed set of JSON-schema keywords, so a new kind of constraint in
a model fails here until it is understood.
"""

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from opik_connect.agent.ollie.tool_registry import TOOLS
from opik_connect.connect.suites.llm_judge import VERDICT_TOOL_DEFINITION, RecordedVerdicts
from opik_connect.tool_schema import input_schema

KNOWN_KEYWORDS = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "default",
    "description",
    "items",
    "anyOf",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
}
MODELS: list[tuple[str, type[BaseModel], dict[str, Any]]] = [
    *((tool.name, tool.input_model, tool.definition()["input_schema"]) for tool in TOOLS),
    ("record_verdicts", RecordedVerdicts, VERDICT_TOOL_DEFINITION["input_schema"]),
]
IDS = [name for name, _, _ in MODELS]


def values(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Every JSON value the schema admits (for the keywords the generated schemas use)."""
    unknown = set(schema) - KNOWN_KEYWORDS
    assert not unknown, f"teach this test the keywords {unknown}"
    if "anyOf" in schema:
        return st.one_of([values(option) for option in schema["anyOf"]])
    kind = schema["type"]
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 30))
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum", 10**6))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(values(schema["items"]), max_size=3)
    assert kind == "object"
    return objects(schema)


def objects(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    assert required <= set(properties)
    return st.fixed_dictionaries(
        {name: values(properties[name]) for name in required},
        optional={name: values(sub) for name, sub in properties.items() if name not in required},
    )


def model_level_only(exc: ValidationError) -> bool:
    """Errors a JSON schema cannot express (a rule across fields) carry no field location."""
    return all(error["loc"] == () for error in exc.errors())


@pytest.mark.parametrize(("name", "model", "schema"), MODELS, ids=IDS)
def test_schema_is_the_models_own(name: str, model: type[BaseModel], schema: dict) -> None:
    assert schema == input_schema(model)
    assert set(schema["properties"]) == set(model.model_fields)
    assert set(schema.get("required", [])) == {
        field for field, info in model.model_fields.items() if info.is_required()
    }


@pytest.mark.parametrize(("name", "model", "schema"), MODELS, ids=IDS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_input_the_schema_admits_the_model_accepts(
    name: str, model: type[BaseModel], schema: dict, data: st.DataObject
) -> None:
    tool_input = data.draw(objects(schema))
    try:
        model.model_validate(tool_input)
    except ValidationError as exc:
        assert model_level_only(exc), exc


@pytest.mark.parametrize(("name", "model", "schema"), MODELS, ids=IDS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_inputs_the_schema_forbids_the_model_refuses(
    name: str, model: type[BaseModel], schema: dict, data: st.DataObject
) -> None:
    tool_input = data.draw(objects(schema))
    properties = sorted(schema["properties"])
    if schema.get("additionalProperties") is False:
        with pytest.raises(ValidationError):
            model.model_validate({**tool_input, "not_in_the_schema": 1})
    for field in schema.get("required", []):
        with pytest.raises(ValidationError):
            model.model_validate({k: v for k, v in tool_input.items() if k != field})
    field = data.draw(st.sampled_from(properties))
    with pytest.raises(ValidationError):
        model.model_validate({**tool_input, field: {"an": "object where none is allowed"}})
