"""Atomic, owner-only (0600) file writes: the one way state files and records reach the disk.

Write a temp file beside the target, fsync it, os.replace it over the target and fsync the
directory, so a reader or a crash sees the old file or the new one, never half of either, and
the file is never readable by anyone but the owner, not even for a moment.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_private(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically, mode 0600; the parent directory must exist."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_private_json(path: Path, data: Any) -> None:
    """JSON state (pairings, run files) in a private 0700 directory, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = json.dumps(data, indent=2, sort_keys=True)
    atomic_write_private(path, text.encode("utf-8"))
