"""Crash injection for the apply's steps: a hook that SIGKILLs the process right after one."""

from __future__ import annotations

import os
import signal

from opik_connect.connect.fixes.branches import StepHook


def sigkill_after(step: str) -> StepHook:
    """The `FixBranches.on_step` hook that dies at `step`, as a crash would."""

    def hook(reached: str) -> None:
        if reached == step:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook
