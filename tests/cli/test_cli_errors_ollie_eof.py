"""Ctrl-D at the daemon's `ollie>` prompt closes the prompt and says so.

Ctrl-D at the daemon's `ollie>` prompt says the prompt closed while the daemon keeps running,
instead of leaving a dead prompt on screen.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from rich.console import Console

from opik_connect.connect.terminal.line_input import LineReader
from opik_connect.connect.terminal.ollie_prompt import OllieTerminal
from opik_connect.protocol import AskEvent, AskRequest

pytestmark = pytest.mark.timeout(20)


async def never_asked(request: AskRequest) -> AsyncIterator[AskEvent]:
    raise AssertionError(f"no question was typed, got {request.question!r}")
    yield  # pragma: no cover - makes this an async generator


async def test_end_of_input_says_the_daemon_keeps_serving() -> None:
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    console = Console(record=True, width=300)
    try:
        await OllieTerminal(console, never_asked, lines=LineReader(read_fd)).run()
    finally:
        os.close(read_fd)
    text = console.export_text()
    assert "end of input: the ollie> prompt is closed and the daemon keeps serving" in text
    assert "opik-connect approve|reject" in text
