"""Ollie's model and the judge for the demo: the real ones with a key, else scripted replays."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Literal

from opik_connect.connect.suites.llm_judge import AnthropicJudge, Judge
from opik_connect.demo.scenario import DemoError

SCRIPTED_MODEL = "scripted-replay"


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
            lines=[
                "Ollie: [bold yellow]scripted session[/]: replaying "
                "fixtures/demo/ollie_session.json; no model is called "
                "(set ANTHROPIC_API_KEY for a real one)",
                "judge: [bold yellow]scripted judge[/]: verdicts from "
                "fixtures/demo/judge_script.json; no model is called",
            ],
        )
