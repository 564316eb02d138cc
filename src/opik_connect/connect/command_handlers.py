"""Running one command's handler on the daemon, and spelling its outcome as a CommandResult."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from opik_connect.link.frames import parse_model
from opik_connect.protocol import COMMANDS, BridgeError, CommandResult, ErrorBody, ErrorCode

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[BaseModel]]
"""A command handler: receives the validated args model, returns the result model."""


async def run_handler(
    handlers: dict[str, Handler], type_name: str, args_payload: dict[str, Any]
) -> dict[str, Any]:
    """The CommandResult payload: a success is spelled directly from the handler's result,
    already checked for its type, so it is dumped once and not validated twice."""
    try:
        spec = COMMANDS.get(type_name)
        handler = handlers.get(type_name)
        if spec is None or handler is None:
            raise BridgeError(ErrorCode.UNKNOWN_TYPE, f"unknown command type {type_name!r}")
        args = parse_model(spec[0], args_payload, ErrorCode.INVALID_ARGS)
        result = await handler(args)
        if not isinstance(result, spec[1]):
            raise TypeError(f"{type_name} handler returned {type(result).__name__}")
        return {"ok": True, "result": result.model_dump(mode="json"), "error": None}
    except BridgeError as exc:
        return CommandResult(ok=False, error=exc.to_body()).model_dump(mode="json")
    except Exception:
        log.exception("command %s failed", type_name)
        body = ErrorBody(code=ErrorCode.INTERNAL, message=f"internal error in {type_name}")
        return CommandResult(ok=False, error=body).model_dump(mode="json")
