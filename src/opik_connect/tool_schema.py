"""Tool input schemas for the Messages API, generated from the pydantic model that validates them.

One source of truth, as in the Anthropic SDK's tool runner: the schema the model sees is the
model's own JSON schema, so what it is told it may send and what the tool accepts cannot drift.
References are inlined, and pydantic's generated titles and the models' docstrings (written for
readers of the code; the tool's description is the prompt) dropped, to keep the prompt compact.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def input_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema, self-contained (no `$defs`) and without generated titles."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})
    return _inline(schema, definitions)


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        extra = {key: value for key, value in node.items() if key != "$ref"}
        return {**_inline(definitions[name], definitions), **_inline(extra, definitions)}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "description" and "properties" in node:
            continue
        if key == "properties":
            out[key] = {name: _inline(prop, definitions) for name, prop in value.items()}
        else:
            out[key] = _inline(value, definitions)
    return out
