"""Opening a file under the root in one openat2(2) call when no component of its path is a symlink.

The kernel resolves the path beneath the root's descriptor and refuses any symlink on the way
(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), which is what PathPolicy's walk proves one component at
a time. Anything else (a symlink, a race, a kernel or sandbox without openat2) is left to the
walk, which follows in-root symlinks in user space and names every error.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
import sys
from collections.abc import Callable
from pathlib import Path

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
SYS_OPENAT2 = 437
"""Its number on every architecture with the common syscall table (Linux 5.6+)."""
_COMMON_TABLE_MACHINES = frozenset({"x86_64", "aarch64", "arm64", "riscv64", "armv7l", "i686"})
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_UNAVAILABLE = frozenset({errno.ENOSYS, errno.EPERM, errno.E2BIG, errno.EINVAL})
"""openat2 missing (old kernel), refused by a seccomp filter, or not taking these flags."""


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


Syscall = Callable[[int, int, bytes, int, int], int]


def _libc_syscall() -> Syscall | None:
    if sys.platform != "linux" or platform.machine() not in _COMMON_TABLE_MACHINES:
        return None
    try:
        syscall = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long
    syscall.argtypes = (
        ctypes.c_long,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
    )
    return syscall


_SYSCALL = _libc_syscall()


class DirectOpener:
    """openat2 beneath a directory, no symlinks, with fixed open flags; after one answer that
    says the call itself is unavailable, it is not tried again."""

    def __init__(self, flags: int, syscall: Syscall | None = None) -> None:
        self.syscall = syscall if syscall is not None else _SYSCALL
        self._how = _OpenHow(
            flags, 0, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
        )
        self._how_at = ctypes.addressof(self._how)

    def open_beneath(self, dir_fd: int, rel: str) -> int | None:
        """A descriptor for `rel` (a relative path) under `dir_fd`; None where the kernel
        refuses it (a symlink, a name leaving the directory, a missing file) or lacks openat2."""
        if self.syscall is None:
            return None
        fd = self.syscall(
            SYS_OPENAT2, dir_fd, os.fsencode(rel), self._how_at, ctypes.sizeof(_OpenHow)
        )
        if fd >= 0:
            return fd
        if ctypes.get_errno() in _UNAVAILABLE:
            self.syscall = None
        return None

    def open_regular(self, root: Path, rel: str) -> tuple[int, int] | None:
        """(descriptor, size) of `rel`, a path of plain names under root, when lstat sees a
        regular file there and the descriptor openat2 gives is that very file (fstat); None
        otherwise, without opening anything lstat did not see as a regular file."""
        if self.syscall is None or not _plain_names(rel):
            return None
        root_fd = os.open(root, _DIR_FLAGS)
        try:
            try:
                seen = os.stat(rel, dir_fd=root_fd, follow_symlinks=False)
            except OSError:
                return None
            if not stat.S_ISREG(seen.st_mode):
                return None
            fd = self.open_beneath(root_fd, rel)
        finally:
            os.close(root_fd)
        if fd is None:
            return None
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (seen.st_dev, seen.st_ino) or not stat.S_ISREG(
            opened.st_mode
        ):
            os.close(fd)
            return None
        return fd, seen.st_size


def _plain_names(rel: str) -> bool:
    """'a/b': no empty, '.' or '..' component, no NUL (the walk names what such a path is)."""
    slashed = f"/{rel}/"
    return (
        bool(rel)
        and "\0" not in rel
        and "//" not in slashed
        and "/./" not in slashed
        and "/../" not in slashed
    )
