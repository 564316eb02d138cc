"""ripgrep as a fast file finder: which files may hold a match or a secret, never the answer."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import sys
import time
from pathlib import Path

from opik_connect.connect.child_process import child_process


def find_ripgrep() -> str | None:
    """`rg` from the ripgrep wheel next to our interpreter first, else on PATH."""
    beside = Path(sys.executable).parent / "rg"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("rg")


GLOB_SPECIAL = frozenset("\\*?[]{}")


def glob_literal(path: str) -> str:
    """`path` as an rg glob that matches it alone (globset's metacharacters escaped)."""
    return "".join("\\" + ch if ch in GLOB_SPECIAL else ch for ch in path)


async def rg_files_with_matches(
    cmd: list[str], root: Path, until: float = math.inf
) -> tuple[list[str], bool] | None:
    """The files `cmd` (an `rg --files-with-matches --null` command) lists, relative to root,
    and whether rg finished before time.monotonic() reached `until` (if not, what it listed
    by then); None when rg rejects the pattern, so the caller falls back to every file."""
    chunks: list[bytes] = []
    async with child_process(*cmd, cwd=root) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        stdout, stderr = proc.stdout, proc.stderr

        async def collect() -> None:
            while chunk := await stdout.read(1 << 16):
                chunks.append(chunk)

        try:
            async with asyncio.timeout(max(until - time.monotonic(), 0)):
                _, err = await asyncio.gather(collect(), stderr.read())
                await proc.wait()
        except TimeoutError:
            *done, _cut = b"".join(chunks).split(b"\0")
            return _names(done), False
    if proc.returncode == 2 and b"regex" in err:
        return None
    return _names(b"".join(chunks).split(b"\0")), True


def _names(items: list[bytes]) -> list[str]:
    names = []
    for item in items:
        try:
            name = item.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if name:
            names.append(name.removeprefix("./"))
    return names
