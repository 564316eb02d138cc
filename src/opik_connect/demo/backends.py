"""Ollie's model and the judge for the demo: the real ones with a key, else scripted replays."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from opik_connect.connect.suites.llm_judge import AnthropicJudge, Judge
from opik_connect.demo.scenario import DemoError

SCRIPTED_MODEL = "scripted-replay"
TRACE_FAILING = "{{trace:failing}}"
TRACE_SUCCEEDING = "{{trace:succeeding}}"
SPAN_BUILD_PROMPT = "{{span:failing/build_prompt}}"
SPAN_RETRIEVE = "{{span:failing/retrieve_articles}}"
SCRIPT_IDS = (TRACE_FAILING, TRACE_SUCCEEDING, SPAN_BUILD_PROMPT, SPAN_RETRIEVE)
"""Placeholders in ollie_session.json for ids only the log step knows: the demo logs the
production traces afresh, so their ids are new on every run."""


def fill_ids(value: Any, ids: dict[str, str]) -> Any:
    """The script's turns with every placeholder replaced by its id."""
    if isinstance(value, str):
        for placeholder, real in ids.items():
            value = value.replace(placeholder, real)
        return value
    if isinstance(value, list):
        return [fill_ids(item, ids) for item in value]
    if isinstance(value, dict):
        return {key: fill_ids(item, ids) for key, item in value.items()}
    return value


def _scripted_api_module(fixtures: Path) -> ModuleType:
    """fixtures/scripted_messages_api.py, loaded from the checkout (fixtures/ is not installed)."""
    path = fixtures / "scripted_messages_api.py"
    spec = importlib.util.spec_from_file_location("opik_connect_demo_scripted_api", path)
    if spec is None or spec.loader is None:
        raise DemoError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Backends:
    """Who answers as Ollie's model and who judges natural-language assertions."""

    ollie_env: dict[str, str]
    judge: Judge | Literal["auto"]
    model: str | None
    lines: list[str] = field(default_factory=list)
    scripted_turns: list[dict[str, Any]] | None = None
    """The scripted session's turns (None for a real model): fill them with bind_ids."""

    def bind_ids(self, ids: dict[str, str]) -> None:
        """Put the logged traces' ids where the script has placeholders; a no-op for a real
        model, which reads the ids from the traces."""
        if self.scripted_turns is not None:
            self.scripted_turns[:] = fill_ids(self.scripted_turns, ids)


@contextlib.contextmanager
def model_backends(fixtures: Path) -> Iterator[Backends]:
    """The real model and judge when ANTHROPIC_API_KEY is set; else both replayed from scripts
    served on 127.0.0.1 (the real SDK pointed at them through base_url)."""
    if os.environ.get("ANTHROPIC_API_KEY", "").strip():
        yield Backends(
            ollie_env=dict(os.environ),
            judge="auto",
            model=None,
            lines=[
                "Ollie: [bold]real model[/] (ANTHROPIC_API_KEY is set; model from the example's "
                "config)",
                "judge: [bold]real judge[/] for natural-language assertions",
            ],
        )
        return
    scripted = _scripted_api_module(fixtures)
    session_script = fixtures / "demo" / "ollie_session.json"
    judge_script = fixtures / "demo" / "judge_script.json"
    with (
        scripted.ScriptedMessagesAPI(scripted.load_script(session_script)) as ollie_api,
        scripted.ScriptedMessagesAPI(scripted.load_script(judge_script)) as judge_api,
    ):
        judge = AnthropicJudge(
            model=SCRIPTED_MODEL,
            api_key="scripted",
            base_url=judge_api.url,
            max_retries=0,
            label="scripted",
        )
        yield Backends(
            ollie_env={"ANTHROPIC_API_KEY": "scripted", "ANTHROPIC_BASE_URL": ollie_api.url},
            judge=judge,
            model=SCRIPTED_MODEL,
            scripted_turns=ollie_api.turns,
            lines=[
                "Ollie: [bold yellow]scripted session[/]: replaying "
                "fixtures/demo/ollie_session.json; no model is called "
                "(set ANTHROPIC_API_KEY for a real one)",
                "judge: [bold yellow]scripted judge[/]: verdicts from "
                "fixtures/demo/judge_script.json; no model is called",
            ],
        )
