"""A small price table for estimating what a session cost. An estimate, never a bill.

Prices are USD per million tokens as published by Anthropic for the standard tier (prompt-cache
writes at 1.25x input, cache reads at 0.1x input). Model ids match by longest prefix, so dated ids
(`claude-sonnet-4-5-20250929`) find their family. A model not listed has no estimate (None).
"""

from __future__ import annotations

from pydantic import BaseModel

from opik_connect.agent.ollie.events import TokenUsage


class ModelPrice(BaseModel):
    input: float
    output: float

    @property
    def cache_write(self) -> float:
        return self.input * 1.25

    @property
    def cache_read(self) -> float:
        return self.input * 0.1


PRICES: dict[str, ModelPrice] = {
    "claude-opus-4-5": ModelPrice(input=5.0, output=25.0),
    "claude-opus-4-1": ModelPrice(input=15.0, output=75.0),
    "claude-opus-4": ModelPrice(input=15.0, output=75.0),
    "claude-sonnet-4-5": ModelPrice(input=3.0, output=15.0),
    "claude-sonnet-4": ModelPrice(input=3.0, output=15.0),
    "claude-3-7-sonnet": ModelPrice(input=3.0, output=15.0),
    "claude-haiku-4-5": ModelPrice(input=1.0, output=5.0),
    "claude-3-5-haiku": ModelPrice(input=0.8, output=4.0),
}


def price_for(model: str) -> ModelPrice | None:
    matches = [prefix for prefix in PRICES if model.startswith(prefix)]
    return PRICES[max(matches, key=len)] if matches else None


def estimate_cost(model: str, usage: TokenUsage) -> float | None:
    """Estimated USD for `usage` on `model`, or None when the table does not know the model."""
    price = price_for(model)
    if price is None:
        return None
    total = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_creation_input_tokens * price.cache_write
        + usage.cache_read_input_tokens * price.cache_read
    )
    return round(total / 1_000_000, 6)
