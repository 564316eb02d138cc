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


class InlineHandler:
    """A handler that can often answer without awaiting: `now(args)` returns the result, or
    None when it must wait (for git, a worker thread), and the link then awaits it as usual.

    Answered in the receive loop, a fast command costs no task, no worker slot and no extra
    turn of the event loop; `now` must answer exactly as awaiting the handler would. It runs
    outside `serving`: a handler that needs its command id (for idempotency) is not inline.
    """

    def __init__(
        self, run: Callable[[Any], Awaitable[BaseModel]], now: Callable[[Any], BaseModel | None]
    ) -> None:
        self.run = run
        self.now = now

    async def __call__(self, args: Any) -> BaseModel:
        return await self.run(args)


async def run_handler(
    handlers: dict[str, Handler], type_name: str, args_payload: dict[str, Any]
) -> dict[str, Any]:
    """The CommandResult payload: a success is spelled directly from the handler's result,
    already checked for its type, so it is dumped once and not validated twice."""
    try:
        spec, handler = _lookup(handlers, type_name)
        args = parse_model(spec[0], args_payload, ErrorCode.INVALID_ARGS)
        return _success(type_name, spec[1], await handler(args))
    except Exception as exc:
        return _failure(type_name, exc)


def run_handler_now(
    handlers: dict[str, Handler], type_name: str, args_payload: dict[str, Any]
) -> dict[str, Any] | None:
    """run_handler's payload when the handler is an InlineHandler that answers at once; None
    when the command must run as a task (then nothing was done that it will not redo)."""
    handler = handlers.get(type_name)
    if not isinstance(handler, InlineHandler):
        return None
    try:
        spec, _ = _lookup(handlers, type_name)
        args = parse_model(spec[0], args_payload, ErrorCode.INVALID_ARGS)
        result = handler.now(args)
        return None if result is None else _success(type_name, spec[1], result)
    except Exception as exc:
        return _failure(type_name, exc)


def _lookup(
    handlers: dict[str, Handler], type_name: str
) -> tuple[tuple[type[BaseModel], type[BaseModel]], Handler]:
    spec = COMMANDS.get(type_name)
    handler = handlers.get(type_name)
    if spec is None or handler is None:
        raise BridgeError(ErrorCode.UNKNOWN_TYPE, f"unknown command type {type_name!r}")
    return spec, handler


def _success(type_name: str, result_type: type[BaseModel], result: BaseModel) -> dict[str, Any]:
    if not isinstance(result, result_type):
        raise TypeError(f"{type_name} handler returned {type(result).__name__}")
    dumped = result.__pydantic_serializer__.to_python(result, mode="json")  # model_dump's core
    return {"ok": True, "result": dumped, "error": None}


def _failure(type_name: str, exc: Exception) -> dict[str, Any]:
    if isinstance(exc, BridgeError):
        return CommandResult(ok=False, error=exc.to_body()).model_dump(mode="json")
    log.error("command %s failed", type_name, exc_info=exc)
    body = ErrorBody(code=ErrorCode.INTERNAL, message=f"internal error in {type_name}")
    return CommandResult(ok=False, error=body).model_dump(mode="json")
