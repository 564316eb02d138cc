"""The LLM judge: all natural-language assertions of one run, judged in one Messages API call.

The verdict comes back through a forced tool call, so it is structured (value, reason, confidence
per assertion) rather than prose to be scraped. Anything short of a complete verdict is a
JudgeError, which makes the run `error`: a judge that did not answer never passes a run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opik_connect.config import load_project_config
from opik_connect.tool_schema import input_schema

VERDICT_TOOL = "record_verdicts"
MAX_OUTPUT_CHARS = 20_000

SYSTEM_PROMPT = (
    "You are a strict test judge for an LLM agent. You get the input the agent received, the "
    "output it produced and numbered assertions about that output. Decide each assertion on the "
    "evidence in the output alone: value true only if the assertion clearly holds. Give a short "
    f"reason and a confidence between 0 and 1. Answer only by calling {VERDICT_TOOL} with one "
    "verdict per assertion."
)


class Verdict(BaseModel):
    """One assertion's verdict as the judge records it (extra keys a model adds are ignored)."""

    model_config = ConfigDict(extra="ignore")

    index: int = Field(description="The assertion's number.")
    value: bool = Field(description="Whether the assertion holds.")
    reason: str
    confidence: float = Field(ge=0, le=1)


class RecordedVerdicts(BaseModel):
    """The input of the forced verdict tool: its schema is what the judge is shown."""

    verdicts: list[Verdict]


VERDICT_TOOL_DEFINITION: dict[str, Any] = {
    "name": VERDICT_TOOL,
    "description": "Record one verdict per numbered assertion.",
    "input_schema": input_schema(RecordedVerdicts),
}


@dataclass(frozen=True)
class JudgeVerdict:
    value: bool
    reason: str
    confidence: float | None = None


class JudgeError(Exception):
    """The judge gave no usable verdict (API failure after retries, missing or malformed answer)."""


class Judge(Protocol):
    """Anything that can judge natural-language assertions; `label` goes into run summaries."""

    label: str

    async def judge(
        self, *, input: dict[str, Any], output: Any, assertions: list[str]
    ) -> list[JudgeVerdict]:
        """One verdict per assertion, in order; raises JudgeError otherwise."""
        ...


class AnthropicJudge:
    """Judges through the Anthropic SDK; the SDK retries API errors with backoff (max_retries)."""

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str | None = None,
        max_retries: int = 3,
        timeout_s: float = 120.0,
        label: str | None = None,
    ) -> None:
        import anthropic  # here, not at the top: it takes seconds to import, and every CLI start
        # (`suite list`, `protocol schema`) would pay for it

        self.model = model
        self.label = label or f"anthropic:{model}"
        self._api_error = anthropic.APIError
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout_s
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def judge(
        self, *, input: dict[str, Any], output: Any, assertions: list[str]
    ) -> list[JudgeVerdict]:
        try:
            reply = await self._client.messages.create(
                model=self.model,
                max_tokens=1024 + 256 * len(assertions),
                system=SYSTEM_PROMPT,
                tools=[VERDICT_TOOL_DEFINITION],
                tool_choice={"type": "tool", "name": VERDICT_TOOL},
                messages=[{"role": "user", "content": judge_prompt(input, output, assertions)}],
            )
        except self._api_error as exc:
            raise JudgeError(f"judge API error: {exc}") from exc
        calls = [b for b in reply.content if b.type == "tool_use" and b.name == VERDICT_TOOL]
        if not calls:
            raise JudgeError(f"judge answered without calling {VERDICT_TOOL}")
        return parse_verdicts(calls[0].input, len(assertions))


def judge_prompt(input: dict[str, Any], output: Any, assertions: list[str]) -> str:
    output_text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
    if len(output_text) > MAX_OUTPUT_CHARS:
        output_text = output_text[:MAX_OUTPUT_CHARS] + "\n[... output truncated]"
    numbered = "\n".join(f"{i}. {text}" for i, text in enumerate(assertions, start=1))
    return (
        f"<input>\n{json.dumps(input, ensure_ascii=False, indent=2)}\n</input>\n"
        f"<output>\n{output_text}\n</output>\n"
        f"<assertions>\n{numbered}\n</assertions>"
    )


def parse_verdicts(raw: Any, count: int) -> list[JudgeVerdict]:
    """Exactly one verdict for each of assertions 1..count, or JudgeError."""
    try:
        verdicts = RecordedVerdicts.model_validate(raw).verdicts
    except ValidationError as exc:
        raise JudgeError(f"judge verdict unparseable: {exc.errors()[0]['msg']}") from exc
    by_index: dict[int, Verdict] = {}
    for verdict in verdicts:
        if verdict.index in by_index:
            raise JudgeError(f"judge gave two verdicts for assertion {verdict.index}")
        by_index[verdict.index] = verdict
    missing = [i for i in range(1, count + 1) if i not in by_index]
    if missing:
        raise JudgeError(f"judge gave no verdict for assertion(s) {missing}")
    return [
        JudgeVerdict(by_index[i].value, by_index[i].reason, by_index[i].confidence)
        for i in range(1, count + 1)
    ]


def judge_from_config(
    root: Path, *, api_key: str | None = None, base_url: str | None = None
) -> AnthropicJudge | None:
    """The judge the project configures (judge_model, else model), or None without a key."""
    key = api_key or os.environ.get("ANTHROPIC_API_KEY")
    if not key:
        return None
    config = load_project_config(root)
    return AnthropicJudge(
        model=config.judge_model or config.model,
        api_key=key,
        base_url=base_url or os.environ.get("ANTHROPIC_BASE_URL") or None,
    )
