"""The demo's screens: a heading per step of the loop, and the failing trace as a span tree."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from opik_connect.agent.traces.render import render_trace
from opik_connect.agent.traces.store import TraceWithSpans


class Steps:
    """The step headings, each shown once, in the loop's words."""

    NAMES = ("log", "test", "analyze", "validate", "improve")
    """Validate comes before improve: the daemon verifies a proposal before asking you."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.shown: set[str] = set()

    def show(self, name: str, text: str) -> None:
        if name in self.shown:
            return
        self.shown.add(name)
        number = self.NAMES.index(name) + 1 if name in self.NAMES else None
        label = f"{number}/{len(self.NAMES)} {name}" if number else name
        self.console.print()
        self.console.rule(f"[bold cyan]{label}[/]: {text}", align="left")


def span_tree(record: TraceWithSpans) -> Text:
    """The trace's question and answer, then its span tree (render_trace's lines, values left
    out: Ollie reads them in full)."""
    trace = record.trace
    text = Text()
    text.append("question  ", style="dim")
    text.append(f"{_field(trace.input, 'question')}\n")
    text.append("answer    ", style="dim")
    text.append(f"{_field(trace.output, 'output')}\n", style="red")
    for line in render_trace(record).splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("trace ", "- ", "spans:")):
            text.append(line + "\n", style="bold" if stripped.startswith("trace ") else "")
    return text


def _field(value: Any, name: str) -> str:
    return str(value.get(name, value)) if isinstance(value, dict) else str(value)
