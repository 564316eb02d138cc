"""Structured logs: the ids a log line carries (request, command, runner, session) and formatters.

Ids come from context variables set where the work starts (an HTTP request, a daemon connection,
a session's task: asyncio tasks copy them, so everything a session causes carries its id) or from
`extra={...}` on one call. `configure_logging("json")` writes one JSON object per line on stderr.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import Any, Literal

LogFormat = Literal["json", "text"]

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
RUNNER_ID: ContextVar[str | None] = ContextVar("runner_id", default=None)
SESSION_ID: ContextVar[str | None] = ContextVar("session_id", default=None)
COMMAND_ID: ContextVar[str | None] = ContextVar("command_id", default=None)
CONTEXT_IDS: dict[str, ContextVar[str | None]] = {
    "request_id": REQUEST_ID,
    "runner_id": RUNNER_ID,
    "session_id": SESSION_ID,
    "command_id": COMMAND_ID,
}

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_REQUEST_ID_SHAPE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id(presented: str | None) -> str:
    """A proxy's X-Request-ID when it is a plain token (so logs join up), else a new one."""
    if presented and _REQUEST_ID_SHAPE.fullmatch(presented):
        return presented
    return uuid.uuid4().hex[:16]


class ContextFilter(logging.Filter):
    """Copies the context's ids onto each record that does not carry its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in CONTEXT_IDS.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and value is not None and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the ids, any extras."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """A line for people: the message, then its ids and extras as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        pairs = " ".join(f"{key}={value}" for key, value in _extras(record).items())
        line = super().formatMessage(record)
        return f"{line} [{pairs}]" if pairs else line


class _StderrHandler(logging.StreamHandler):
    """Ours, so configuring again replaces it and leaves other handlers alone."""


def configure_logging(log_format: LogFormat, *, debug: bool = False) -> None:
    """Log to stderr: JSON at INFO (for collectors), text at WARNING (a terminal has its own
    announcements), DEBUG for either with --debug. Replaces handlers a previous call installed."""
    handler = _StderrHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    level = logging.INFO if log_format == "json" else logging.WARNING
    logging.getLogger("opik_connect").setLevel(logging.DEBUG if debug else level)
