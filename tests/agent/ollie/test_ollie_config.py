"""Ollie's configuration: where its model, key and base URL come from.

Where Ollie's model, key and base URL come from, the wire form of its events, and the price
estimate its transcripts carry.
"""

from pathlib import Path

import pytest

from fixtures.scripted_messages_api import ScriptedMessagesAPI, text_turn
from opik_connect.agent.ollie.events import (
    SESSION_EVENT,
    SessionStatus,
    SessionStopped,
    TokenUsage,
    ToolCalled,
    to_ask_event,
)
from opik_connect.agent.ollie.loop import Ollie
from opik_connect.agent.ollie.model_prices import estimate_cost, price_for
from opik_connect.agent.ollie.session_request import MissingAPIKey, OllieRequest
from opik_connect.agent.traces.store import TraceStore
from opik_connect.config import ProjectConfig
from opik_connect.protocol import AskRequest, ErrorCode
from tests.ollie_fake_runner import FakeRunner

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("no_ambient_settings")]


def test_no_key_is_a_clear_error_not_an_answer() -> None:
    with pytest.raises(MissingAPIKey) as caught:
        Ollie()
    assert caught.value.code is ErrorCode.NO_API_KEY
    assert "ANTHROPIC_API_KEY" in caught.value.message
    assert "ANTHROPIC_BASE_URL" in caught.value.message


async def test_model_from_config_key_and_base_url_from_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with ScriptedMessagesAPI([text_turn("Cause: none. Fix: none. Evidence: none.")]) as api:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        async with Ollie.from_config(ProjectConfig(model="claude-haiku-4-5-20251001")) as ollie:
            result = await ollie.run_session(
                OllieRequest.from_ask(AskRequest(question="why?")),
                runner=FakeRunner({}),
                traces=TraceStore(),
            )
        assert ollie.client.sdk.is_closed()
    assert result.status is SessionStatus.COMPLETED
    assert api.requests[0]["model"] == "claude-haiku-4-5-20251001"
    assert Path(result.transcript_path).parent == tmp_path / "state" / "transcripts"


def test_explicit_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:1")
    ollie = Ollie.from_config(
        ProjectConfig(), model="m-2", api_key="arg-key", base_url="http://127.0.0.1:2"
    )
    assert ollie.model == "m-2"
    assert ollie.client.sdk.api_key == "arg-key"
    assert str(ollie.client.sdk.base_url).startswith("http://127.0.0.1:2")


def test_events_become_ask_events_and_parse_back() -> None:
    event = ToolCalled(session_id="s1", seq=4, turn=2, tool_use_id="t", name="get_trace", input={})
    wire = to_ask_event(event)
    assert (wire.session_id, wire.seq, wire.type) == ("s1", 4, "tool_called")
    assert wire.data["name"] == "get_trace" and "session_id" not in wire.data
    stopped = SessionStopped(
        session_id="s1",
        seq=9,
        status=SessionStatus.TOKEN_BUDGET,
        detail="spent",
        turns=3,
        usage=TokenUsage(input_tokens=5),
        cost_usd_estimate=None,
    )
    assert SESSION_EVENT.validate_json(stopped.model_dump_json()) == stopped


def test_price_estimate_by_longest_prefix_and_unknown_models() -> None:
    assert price_for("claude-opus-4-5-20251101") == price_for("claude-opus-4-5")
    assert price_for("claude-opus-4-5").input == 5.0  # not claude-opus-4's 15.0
    usage = TokenUsage(
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_creation_input_tokens=1_000_000,
        cache_read_input_tokens=1_000_000,
    )
    assert estimate_cost("claude-sonnet-4-5", usage) == pytest.approx(3 + 15 + 3.75 + 0.3)
    assert estimate_cost("some-local-model", usage) is None
