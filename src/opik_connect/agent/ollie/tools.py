"""Runs one tool call: validate the input with the tool's model, run it, and make the outcome.

Every call ends in a ToolOutcome: text for the model and whether it is an error. Errors are JSON
`{"error": {"code", "message", "details"}}`; bridge errors keep the daemon's code and message
as they came, so the model reads exactly what the bridge said and can correct itself. A tool
that raises anything else is reported to the model as `tool_failed`: tools never end a session.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from opik_connect.agent.ollie.tool_base import ToolError, ToolErrorCode, ToolState
from opik_connect.agent.ollie.tool_registry import TOOLS_BY_NAME
from opik_connect.protocol import BridgeError, ErrorCode

log = logging.getLogger(__name__)


@dataclass
class ToolOutcome:
    content: str
    is_error: bool = False
    error_code: str | None = None


def _error(code: str, message: str, **details: Any) -> ToolOutcome:
    body = {"error": {"code": str(code), "message": message, "details": details}}
    return ToolOutcome(json.dumps(body, ensure_ascii=False, default=str), True, str(code))


def _invalid(exc: ValidationError) -> ToolOutcome:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "input"
    return _error(ErrorCode.INVALID_ARGS, f"{where}: {first['msg']}", field=where)


class OllieTools(ToolState):
    """One session's tools: their shared state, and `call`, which never raises for a tool."""

    async def call(self, name: str, tool_input: dict[str, Any]) -> ToolOutcome:
        tool = TOOLS_BY_NAME.get(name)
        if tool is None:
            return _error(ErrorCode.UNKNOWN_TYPE, f"no tool named {name!r}", tool=name)
        try:
            return ToolOutcome(await tool.run(self, tool.input_model.model_validate(tool_input)))
        except ValidationError as exc:
            return _invalid(exc)
        except BridgeError as exc:
            return _error(exc.code, exc.message, **exc.details)
        except ToolError as exc:
            return _error(exc.code, exc.message, **exc.details)
        except Exception as exc:
            log.exception("tool %s failed", name)
            return _error(ToolErrorCode.TOOL_FAILED, f"{name} failed: {type(exc).__name__}: {exc}")
