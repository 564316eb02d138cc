"""ripgrep as a fast file finder: which files may hold a match or a secret, never the answer."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from opik_connect.connect.child_process import child_process


def find_ripgrep() -> str | None:
    """`rg` from the ripgrep wheel next to our interpreter first, else on PATH."""
    beside = Path(sys.executable).parent / "rg"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("rg")


async def rg_files_with_matches(cmd: list[str], root: Path) -> list[str] | None:
    """The files `cmd` (an `rg --files-with-matches --null` command) lists, relative to root;
    None when rg rejects the pattern, so the caller falls back to every visible file."""
    async with child_process(*cmd, cwd=root) as proc:
        out, err = await proc.communicate()
    if proc.returncode == 2 and b"regex" in err:
        return None
    names = []
    for item in out.split(b"\0"):
        try:
            name = item.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if name:
            names.append(name.removeprefix("./"))
    return names
