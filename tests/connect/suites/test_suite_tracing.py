"""Where suite workers send traces: the configured Opik server, else the daemon's platform sink,
else nowhere (tracking off), and the tags that link each trace to its suite run."""

from __future__ import annotations

from pathlib import Path

from opik_connect.config import OpikSettings, ProjectConfig
from opik_connect.connect.suites.suite_tracing import TraceSink, run_trace_args, suite_tracing

SINK = TraceSink("http://127.0.0.1:9/api", "platform-token")
USER_ENV = {"PATH": "/bin", "OPIK_PROJECT_NAME": "production", "OPIK_API_KEY": "stale"}


def test_no_server_and_no_sink_turns_tracking_off() -> None:
    tracing = suite_tracing(Path("/x/shop"), ProjectConfig(), OpikSettings(), USER_ENV)
    assert tracing.env == {"PATH": "/bin", "OPIK_TRACK_DISABLE": "true"}
    assert tracing.destination == "no Opik server configured: suite traces are not sent"


def test_no_server_sends_to_the_platforms_sink_with_its_token() -> None:
    tracing = suite_tracing(Path("/x/shop"), ProjectConfig(), OpikSettings(), USER_ENV, SINK)
    assert tracing.env == {
        "PATH": "/bin",
        "OPIK_URL_OVERRIDE": SINK.url,
        "OPIK_API_KEY": "platform-token",
        "OPIK_WORKSPACE": "default",
        "OPIK_PROJECT_NAME": "shop-suites",
        "OPIK_ANALYTICS_ENABLE": "false",
        "OPIK_SENTRY_ENABLE": "false",
    }
    assert tracing.destination == f"traces → the platform's sink at {SINK.url}"
    mine = {**USER_ENV, "OPIK_ANALYTICS_ENABLE": "true"}
    kept = suite_tracing(Path("/x/shop"), ProjectConfig(), OpikSettings(), mine, SINK)
    assert kept.env["OPIK_ANALYTICS_ENABLE"] == "true", "the user's own setting wins"


def test_a_configured_server_wins_over_the_sink() -> None:
    settings = OpikSettings(url="https://opik.example/api", api_key="k", workspace="team")
    tracing = suite_tracing(Path("/x/shop"), ProjectConfig(), settings, USER_ENV, SINK)
    assert tracing.env["OPIK_URL_OVERRIDE"] == "https://opik.example/api"
    assert tracing.env["OPIK_API_KEY"] == "k"
    assert "opik.example" in tracing.destination


def test_every_trace_names_its_suite_run() -> None:
    args = run_trace_args("smoke", "q1", 0, None, "opik-connect/fix-1", "20261204T000000-ab")
    assert args["tags"] == [
        "opik-connect-suite",
        "suite:smoke",
        "item:q1",
        "run:1",
        "suite-run:20261204T000000-ab",
        "branch:opik-connect/fix-1",
    ]
    assert args["metadata"]["opik_connect"]["suite_run_id"] == "20261204T000000-ab"
