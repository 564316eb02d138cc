"""Turning websocket messages into Frames and back, with bad input mapped to wire error codes.

Both ends of the link use this so a malformed frame gets the same answer from either side.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from opik_connect.protocol import (
    BridgeError,
    CommandResult,
    ErrorBody,
    ErrorCode,
    Frame,
    FrameError,
)

M = TypeVar("M", bound=BaseModel)


def decode_frame(message: str | bytes) -> Frame:
    """Parse one websocket message; anything that is not a valid Frame is malformed_frame."""
    try:
        return Frame.model_validate_json(message)
    except ValidationError as exc:
        err = exc.errors()[0]
        if err["type"] == "json_invalid":
            raise BridgeError(
                ErrorCode.MALFORMED_FRAME, f"frame is not JSON: {err['msg']}"
            ) from exc
        if err["type"] == "model_type":
            raise BridgeError(ErrorCode.MALFORMED_FRAME, "frame must be a JSON object") from exc
        field, msg = first_error(exc)
        raise BridgeError(
            ErrorCode.MALFORMED_FRAME, f"bad frame field {field}: {msg}", field=field
        ) from exc


def first_error(exc: ValidationError) -> tuple[str, str]:
    """The first failing field as a dotted path, and pydantic's message for it."""
    err = exc.errors()[0]
    field = ".".join(str(part) for part in err["loc"]) or "(root)"
    return field, err["msg"]


def parse_model(model: type[M], payload: dict[str, Any], code: ErrorCode) -> M:
    """Validate a payload; failure becomes BridgeError(code) naming the field."""
    try:
        return model.__pydantic_validator__.validate_python(payload)  # model_validate, minus
    except ValidationError as exc:  # its wrapper's argument checks: on every frame
        field, msg = first_error(exc)
        raise BridgeError(code, f"{field}: {msg}", field=field) from exc


def encode(frame: Frame) -> str:
    return frame.model_dump_json()


def failed(code: ErrorCode, message: str) -> CommandResult:
    """A command's failed outcome, as either end spells it."""
    return CommandResult(ok=False, error=ErrorBody(code=code, message=message))


def carried_error(frame: Frame) -> FrameError:
    """What an error frame says; one that says it badly is MALFORMED_FRAME."""
    return parse_model(FrameError, frame.payload, ErrorCode.MALFORMED_FRAME)


def encode_control(frame_id: str, payload: BaseModel) -> str:
    """An unsigned control frame (the handshake's), typed by its payload's model name."""
    body = payload.model_dump(mode="json")
    return encode(Frame(kind="control", type=type(payload).__name__, id=frame_id, payload=body))
