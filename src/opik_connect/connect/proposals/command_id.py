"""Which platform command the running handler serves, for handlers that must be idempotent.

The link remembers command ids only while the daemon process lives; a handler whose effect
outlasts it (ProposeChange journals a proposal) reads `current_command_id` and records it, so a
command the platform re-sends to a restarted daemon finds the earlier effect instead of repeating.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

current_command_id: ContextVar[str | None] = ContextVar("current_command_id", default=None)
"""The id of the command being handled; None outside a handler the link called."""


@contextlib.contextmanager
def serving(command_id: str) -> Iterator[None]:
    """Set current_command_id for the handler call inside the block."""
    token = current_command_id.set(command_id)
    try:
        yield
    finally:
        current_command_id.reset(token)
