"""The search fallback without ripgrep: `git grep` over git's visible files."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from opik_connect.connect.sandbox.search_hits import (
    MAX_SEARCH_MATCHES,
    Budget,
    FileHits,
    hides_only_secret,
    strip_eol,
)
from opik_connect.git_runner import git_process
from opik_connect.protocol import BridgeError, ErrorCode


async def run_git_grep(
    root: Path,
    where: list[str],
    pattern: str,
    wanted: Callable[[str], bool],
    budget: Budget,
    files: dict[str, FileHits],
    regex: re.Pattern[str] | None,
) -> None:
    async with git_process(
        root,
        "grep",
        "-z",
        "-n",
        "-I",
        "--no-color",
        "-P",
        "-e",
        pattern,
        *where,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        async for raw in proc.stdout:
            parts = raw.split(b"\0", 2)
            if len(parts) != 3:
                continue
            name_b, number_b, text_b = parts
            try:
                name, text = name_b.decode(), strip_eol(text_b.decode())
            except UnicodeDecodeError:
                continue
            if not wanted(name):
                continue
            hit = files.setdefault(name, FileHits(path=name))
            hit.matched_lines += 1
            if budget.stored < MAX_SEARCH_MATCHES:
                hit.lines.append((int(number_b), text, True))
                budget.stored += 1
            else:
                hit.dropped += hides_only_secret(text, regex)
        err = await proc.stderr.read()
        code = await proc.wait()
    if code == 128:
        message = err.decode(errors="replace").strip().splitlines()[-1]
        raise BridgeError(ErrorCode.INVALID_ARGS, f"invalid regex: {message}", field="pattern")
