"""The fake Messages API must speak what the real SDK expects, or every LLM test proves nothing."""

import anthropic
import pytest

from fixtures.scripted_messages_api import ScriptedMessagesAPI, error_turn, text_turn, tool_turn


async def test_sdk_reads_scripted_text_and_tool_turns() -> None:
    turns = [tool_turn("read_file", {"path": "a.py"}), text_turn("done", match="tool_result")]
    with ScriptedMessagesAPI(turns) as api:
        client = anthropic.AsyncAnthropic(api_key="test", base_url=api.url, max_retries=0)
        first = await client.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
        assert first.stop_reason == "tool_use"
        assert first.content[0].type == "tool_use"
        assert first.content[0].input == {"path": "a.py"}
        second = await client.messages.create(
            model="m",
            max_tokens=10,
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": first.model_dump()["content"]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": first.content[0].id, "content": "x"}
                    ],
                },
            ],
        )
        assert second.content[0].text == "done"
        assert api.remaining == 0


async def test_overload_is_retried_by_the_sdk() -> None:
    with ScriptedMessagesAPI([error_turn(529, "overloaded_error"), text_turn("ok")]) as api:
        client = anthropic.AsyncAnthropic(api_key="test", base_url=api.url, max_retries=2)
        reply = await client.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.content[0].text == "ok"
        assert len(api.requests) == 2


async def test_request_with_no_scripted_turn_is_an_error_not_an_answer() -> None:
    with ScriptedMessagesAPI([text_turn("only for refunds", match="refund")]) as api:
        client = anthropic.AsyncAnthropic(api_key="test", base_url=api.url, max_retries=0)
        with pytest.raises(anthropic.InternalServerError):
            await client.messages.create(
                model="m", max_tokens=10, messages=[{"role": "user", "content": "shipping?"}]
            )
        assert len(api.unmatched) == 1
