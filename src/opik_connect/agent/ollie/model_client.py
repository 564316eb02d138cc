"""The model behind Ollie: a one-call interface, and its implementation over the Anthropic SDK.

The loop depends only on `ModelClient`, so a session can run against any Messages-API-shaped
model (or a test double). A client retries what can be retried itself; when it gives up it
raises ModelCallFailed, which ends the session: it is the loop's failure, not a tool's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from opik_connect.agent.ollie.events import TokenUsage

if TYPE_CHECKING:
    import anthropic


class ModelCallFailed(Exception):
    """The model could not be reached or kept failing after the client's retries."""


@dataclass
class ModelReply:
    """One reply: its content blocks in request form (to send back as the assistant turn)."""

    content: list[dict[str, Any]]
    stop_reason: str | None
    model: str | None
    usage: TokenUsage


class ModelClient(Protocol):
    """One Messages API call per turn; the request keys are the Messages API's own."""

    async def create(
        self,
        *,
        model: str,
        max_tokens: int,
        system: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        messages: list[dict[str, Any]],
    ) -> ModelReply: ...

    async def aclose(self) -> None: ...


def _usage(response: Any) -> TokenUsage:
    usage = response.usage
    return TokenUsage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_creation_input_tokens=getattr(usage, "cache_creation_input_tokens", 0) or 0,
        cache_read_input_tokens=getattr(usage, "cache_read_input_tokens", 0) or 0,
    )


def _content_params(response: Any) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for block in response.content:
        if block.type == "text":
            blocks.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            blocks.append(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
            )
        else:
            blocks.append(block.model_dump(mode="json", exclude_none=True))
    return blocks


class AnthropicModelClient:
    """The Anthropic SDK's async client; it retries API errors with backoff (max_retries)."""

    def __init__(
        self, *, api_key: str, base_url: str | None, max_retries: int, timeout_s: float
    ) -> None:
        import anthropic  # here, not at the top: it takes a second to import, on every CLI start

        self._anthropic = anthropic
        self.sdk: anthropic.AsyncAnthropic = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout_s
        )

    async def create(self, **request: Any) -> ModelReply:
        try:
            response = await self.sdk.messages.create(**request)
        except self._anthropic.APIStatusError as exc:
            raise ModelCallFailed(
                f"Anthropic API error {exc.status_code} after retries: {exc.message}"
            ) from exc
        except self._anthropic.APIError as exc:
            raise ModelCallFailed(f"Anthropic API unreachable: {exc.message}") from exc
        return ModelReply(
            content=_content_params(response),
            stop_reason=response.stop_reason,
            model=response.model,
            usage=_usage(response),
        )

    async def aclose(self) -> None:
        await self.sdk.close()
