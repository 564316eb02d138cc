"""Redacted copies of the files redaction changes, which ripgrep searches instead of the files.

Searched as they are, those files would let a pattern's cost depend on a secret's value: a
pattern that matches the raw key makes the file a candidate to read and redact, one that does
not costs nothing. ripgrep reads these copies instead, so what it reads, finds and takes is a
function of the redacted view alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
import weakref
from pathlib import Path

from opik_connect.config import user_state_dir

PREFIX = "shadow-"
LOCK_SUFFIX = ".lock"
ORPHAN_AFTER_S = 60.0


class ShadowTree:
    """A private directory mirroring the root's paths (mode 0700, under the user's state dir),
    removed with this object or at exit. Its daemon holds a lock on a file beside it for as
    long as it lives; a tree whose lock nobody holds (its daemon was killed) is removed by the
    next daemon to make one."""

    def __init__(self, directory: Path, lock_fd: int | None = None) -> None:
        self.root = directory
        self._finalizer = weakref.finalize(self, _remove, directory, lock_fd)

    @classmethod
    def create(cls) -> ShadowTree:
        parent = user_state_dir() / "shadows"
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _remove_orphans(parent)
        lock_fd, lock = tempfile.mkstemp(prefix=PREFIX, suffix=LOCK_SUFFIX, dir=parent)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # before the tree exists: never taken for an orphan
        directory = Path(lock.removesuffix(LOCK_SUFFIX))
        directory.mkdir(mode=0o700)
        return cls(directory, lock_fd)

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


def _recent(entry: Path) -> bool:
    """Made moments ago: a daemon may be between making its lock file and taking it."""
    try:
        return time.time() - entry.stat().st_mtime < ORPHAN_AFTER_S
    except OSError:
        return True


def _lock_path(directory: Path) -> Path:
    return directory.with_name(directory.name + LOCK_SUFFIX)


def _remove(directory: Path, lock_fd: int | None) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    if lock_fd is not None:
        with contextlib.suppress(FileNotFoundError):
            _lock_path(directory).unlink()
        os.close(lock_fd)


def _remove_orphans(parent: Path) -> None:
    """Shadow trees whose daemon is gone (killed before it could remove its own): their lock
    is free, or they have none (removal was cut short)."""
    for entry in parent.iterdir():
        if not entry.name.startswith(PREFIX) or _recent(entry):
            continue
        if not entry.name.endswith(LOCK_SUFFIX):
            if not _lock_path(entry).exists():
                shutil.rmtree(entry, ignore_errors=True)
            continue
        try:
            fd = os.open(entry, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _remove(entry.with_name(entry.name.removesuffix(LOCK_SUFFIX)), fd)
