"""Redacted copies of the files redaction changes, which ripgrep searches instead of the files.

Searched as they are, those files would let a pattern's cost depend on a secret's value: a
pattern that matches the raw key makes the file a candidate to read and redact, one that does
not costs nothing. ripgrep reads these copies instead, so what it reads, finds and takes is a
function of the redacted view alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import weakref
from pathlib import Path

from opik_connect.config import user_state_dir

PREFIX = "shadow-"


class ShadowTree:
    """A private directory mirroring the root's paths (mode 0700, under the user's state dir),
    removed with this object or at exit; one left by a killed daemon is removed by the next
    one to make its own."""

    def __init__(self, directory: Path) -> None:
        self.root = directory
        self._finalizer = weakref.finalize(self, shutil.rmtree, directory, ignore_errors=True)

    @classmethod
    def create(cls) -> ShadowTree:
        parent = user_state_dir() / "shadows"
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _remove_orphans(parent)
        return cls(Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent)))

    def write(self, rel: str, text: bytes) -> None:
        """The file's text as a search sees it, replaced whole (a search reading it meanwhile
        sees the old copy or the new one)."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_bytes(text)
        os.replace(partial, path)

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            (self.root / rel).unlink()

    def close(self) -> None:
        self._finalizer()


def _remove_orphans(parent: Path) -> None:
    """Shadow trees whose daemon is gone (killed before it could remove its own)."""
    for entry in parent.iterdir():
        pid = entry.name.removeprefix(PREFIX).split("-", 1)[0]
        if not entry.name.startswith(PREFIX) or not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
