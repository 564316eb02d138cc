"""Log records carry the ids of their context; JSON lines parse; a proxy's request id is vetted."""

from __future__ import annotations

import json
import logging
import sys

from opik_connect.agent.platform.log_context import (
    REQUEST_ID,
    SESSION_ID,
    ContextFilter,
    JsonFormatter,
    TextFormatter,
    request_id,
)


def record(message: str = "hello", **extra: object) -> logging.LogRecord:
    out = logging.makeLogRecord({"name": "opik_connect.t", "levelno": 20, "levelname": "INFO"})
    out.msg = message
    out.__dict__.update(extra)
    ContextFilter().filter(out)
    return out


def test_json_lines_carry_the_context_ids_and_extras():
    request_token, session_token = REQUEST_ID.set("req-1"), SESSION_ID.set("s1")
    try:
        line = JsonFormatter().format(record("command %s", command="ReadFile", runner_id="r1"))
    finally:
        REQUEST_ID.reset(request_token)
        SESSION_ID.reset(session_token)
    parsed = json.loads(line)
    assert parsed["message"] == "command %s"
    assert parsed["level"] == "info" and parsed["logger"] == "opik_connect.t"
    ids = (parsed["request_id"], parsed["session_id"], parsed["runner_id"])
    assert ids == ("req-1", "s1", "r1")
    assert parsed["command"] == "ReadFile"
    assert "command_id" not in parsed, "an id not known is left out, not null"
    assert parsed["time"].endswith("Z")


def test_an_exception_stays_inside_one_json_line():
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        failing = record("failed", exc_info=sys.exc_info())
    line = JsonFormatter().format(failing)
    assert "\n" not in line
    assert "ValueError: bad\\nthing" in line


def test_text_lines_show_ids_as_pairs():
    line = TextFormatter().format(record("session finished", session_id="s1", status="completed"))
    assert line.endswith("session finished [session_id=s1 status=completed]")


def test_a_request_id_from_a_proxy_is_kept_only_when_it_is_a_plain_token():
    assert request_id("5f2b9c0e1d8a4b7c9e6f3a2d1c0b9a8e") == "5f2b9c0e1d8a4b7c9e6f3a2d1c0b9a8e"
    for bad in (None, "", "x" * 65, "a b", 'a"}\n{"level":"error', "é"):
        fresh = request_id(bad)
        assert fresh != bad and len(fresh) == 16 and fresh.isalnum()
