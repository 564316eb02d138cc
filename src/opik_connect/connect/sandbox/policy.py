"""Which paths the platform may name and how a file is opened without racing a symlink swap.

Every path is relative to the root. A path is resolved one component at a time from a directory
file descriptor we hold, with O_NOFOLLOW, and symlinks are followed in user space only after their
target is checked to stay inside the root; so no check can be undone by a swap before the read.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from opik_connect.connect.sandbox.direct_open import DirectOpener
from opik_connect.connect.sandbox.path_globs import NameMatcher, glob_to_regex
from opik_connect.protocol import BridgeError, ErrorCode

SENSITIVE_NAME_GLOBS: tuple[str, ...] = (
    ".git",
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    "kubeconfig",
    "*.kubeconfig",
    "*.tfstate",
    "*.tfstate.*",
    "*.tfvars",
    "*.tfvars.json",
    ".htpasswd",
    ".ssh",
    ".gnupg",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    "_netrc",
    ".npmrc",
    ".pypirc",
    ".pgpass",
    "*secret*",
    "*credential*",
)
"""Names (of a file or of any directory above it) that are never read, listed or searched."""

SENSITIVE_PAIR_GLOBS: tuple[str, ...] = (
    ".docker/config.json",
    ".kube/config",
    ".aws/config",
    ".aws/credentials",
)
"""A directory and a file name in it, at any depth, that hold credentials."""

_PAIR_DIRS = frozenset(g.rpartition("/")[0].lower() for g in SENSITIVE_PAIR_GLOBS)
"""The pairs' directory names: an ASCII parent not among them cannot make a pair match."""

MAX_SYMLINK_HOPS = 40
SENSITIVE_MEMO_SIZE = 200_000
"""Verdicts remembered per directory: each decides for every path below it."""
FILE_MEMO_SIZE = 4096
"""Verdicts remembered per file, for the files read and searched again and again: not all
50,000 of a large repo (a 2 MB table), whose names cost a microsecond each to check."""
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def normalize_relative(path: str) -> str:
    """Syntactic checks on a platform-supplied path; returns it as 'a/b' ('' for the root).

    Absolute paths, NUL bytes and any '..' component are refused outright, whatever they would
    resolve to, so a traversal attempt is reported as one rather than as a missing file.
    """
    if "\0" in path:
        raise BridgeError(ErrorCode.PATH_TRAVERSAL, "path contains a NUL byte", path=path)
    if path.startswith(("/", "\\", "~")):
        raise BridgeError(ErrorCode.PATH_TRAVERSAL, "path must be relative to the root", path=path)
    parts = path.split("/")
    if ".." in parts or ("\\" in path and ".." in path.replace("\\", "/").split("/")):
        raise BridgeError(ErrorCode.PATH_TRAVERSAL, "path may not contain '..'", path=path)
    if "" in parts or "." in parts:
        return "/".join(p for p in parts if p not in ("", "."))
    return path


@dataclass(frozen=True)
class OpenedFile:
    """A regular file opened race-free; `real_path` is relative to the root after symlinks."""

    fd: int
    real_path: str
    size: int


class PathPolicy:
    """Sensitive-name and deny-glob rules, plus the race-free opener, for one root."""

    def __init__(self, root: Path, deny: Iterable[str] = ()) -> None:
        self.root = Path(os.path.realpath(root))
        self._sensitive_name = NameMatcher(SENSITIVE_NAME_GLOBS)
        pairs = "|".join(glob_to_regex(g) for g in SENSITIVE_PAIR_GLOBS)
        self._sensitive_pair = re.compile(rf"(?:{pairs})\Z", re.IGNORECASE | re.DOTALL)
        self._sensitive_memo: dict[str, bool] = {}
        self.direct = DirectOpener(_FILE_FLAGS)
        self._file_memo: dict[str, bool] = {}
        self.deny_globs = tuple(g.strip() for g in deny if g.strip())
        anchored, named = [], []
        for glob in self.deny_globs:
            if "/" in glob.rstrip("/"):
                anchored.append(glob_to_regex(glob.strip("/")))
            else:
                named.append(glob_to_regex(glob.rstrip("/")))
        self._deny_anchored = re.compile(rf"(?:{'|'.join(anchored)})\Z") if anchored else None
        self._deny_named = re.compile(rf"(?:{'|'.join(named)})\Z") if named else None

    def is_sensitive(self, rel: str) -> bool:
        """True when the path, or any directory above it, is sensitive or denied by config.
        Each directory is checked once (memo) for all the files below it; no recursion, so
        a path of any depth is fine."""
        known = self._file_memo.get(rel)
        if known is not None:
            return known
        memo = self._sensitive_memo
        pending = []
        head = rel.rpartition("/")[0]
        while head and head not in memo:
            pending.append(head)
            head = head.rpartition("/")[0]
        known = bool(head) and memo[head]
        if len(memo) + len(pending) > SENSITIVE_MEMO_SIZE:
            memo.clear()
        for path in reversed(pending):
            known = known or self._check_last_name(path)
            memo[path] = known
        known = known or self._check_last_name(rel)
        if len(self._file_memo) >= FILE_MEMO_SIZE:
            self._file_memo.clear()
        self._file_memo[rel] = known
        return known

    def _check_last_name(self, rel: str) -> bool:
        """The last name, the last two names as a pair, and the whole path against the anchored
        deny globs (the directories above are checked on their own)."""
        head, _, part = rel.rpartition("/")
        if self._sensitive_name.match(part):
            return True
        if head:
            parent = head.rpartition("/")[2]
            if (
                not parent.isascii() or parent.lower() in _PAIR_DIRS
            ) and self._sensitive_pair.match(f"{parent}/{part}"):
                return True
        if self._deny_named is not None and self._deny_named.match(part):
            return True
        return self._deny_anchored is not None and bool(self._deny_anchored.match(rel))

    def check_sensitive(self, rel: str) -> None:
        if self.is_sensitive(rel):
            raise BridgeError(
                ErrorCode.SENSITIVE_PATH, "path is sensitive and cannot be read", path=rel
            )

    def _target_inside(self, current_dir: str, target: str, requested: str) -> str:
        """Where a symlink in `current_dir` points, relative to the root; outside -> traversal."""
        if target.startswith("/"):
            root = str(self.root)
            if target != root and not target.startswith(root + "/"):
                raise BridgeError(
                    ErrorCode.PATH_TRAVERSAL, "a symlink points outside the root", path=requested
                )
            joined = target[len(root) :].lstrip("/")
        else:
            joined = posixpath.join(current_dir, target)
        normal = posixpath.normpath(joined) if joined else "."
        if normal == ".." or normal.startswith("../") or normal.startswith("/"):
            raise BridgeError(
                ErrorCode.PATH_TRAVERSAL, "a symlink points outside the root", path=requested
            )
        return "" if normal == "." else normal

    def open_file(self, rel: str) -> OpenedFile:
        """Open a regular file under root, following in-root symlinks in user space only.

        Non-regular files (FIFO, socket, device) are refused from lstat, before any open; the
        opened descriptor is re-checked with fstat against that lstat, so a swap is detected.
        A path without symlinks is opened by the kernel in one call (direct_open.py).
        """
        if not self.is_sensitive(rel):
            direct = self.direct.open_regular(self.root, rel)
            if direct is not None:
                return OpenedFile(fd=direct[0], real_path=rel, size=direct[1])
        requested = rel
        pending = [p for p in rel.split("/") if p]
        done: list[str] = []
        fds: list[int] = [os.open(self.root, _DIR_FLAGS)]
        hops = 0
        try:
            while pending:
                name = pending.pop(0)
                if name == "..":
                    raise BridgeError(
                        ErrorCode.PATH_TRAVERSAL, "path may not contain '..'", path=rel
                    )
                try:
                    st = os.stat(name, dir_fd=fds[-1], follow_symlinks=False)
                except FileNotFoundError as exc:
                    raise BridgeError(ErrorCode.FILE_NOT_FOUND, "file not found", path=rel) from exc
                except NotADirectoryError as exc:
                    raise BridgeError(ErrorCode.FILE_NOT_FOUND, "file not found", path=rel) from exc
                except PermissionError as exc:
                    raise BridgeError(
                        ErrorCode.PERMISSION_DENIED, "permission denied", path=rel
                    ) from exc
                if stat.S_ISLNK(st.st_mode):
                    hops += 1
                    if hops > MAX_SYMLINK_HOPS:
                        raise BridgeError(ErrorCode.PATH_TRAVERSAL, "too many symlinks", path=rel)
                    target = self._read_link(name, fds[-1], rel)
                    resolved = self._target_inside("/".join(done), target, requested)
                    if resolved:
                        self.check_sensitive(resolved)
                    pending = [p for p in resolved.split("/") if p] + pending
                    while len(fds) > 1:
                        os.close(fds.pop())
                    done = []
                    continue
                if pending:
                    if not stat.S_ISDIR(st.st_mode):
                        raise BridgeError(ErrorCode.FILE_NOT_FOUND, "file not found", path=rel)
                    fds.append(self._open_checked(name, fds[-1], _DIR_FLAGS, st, rel))
                    done.append(name)
                    continue
                done.append(name)
                if stat.S_ISDIR(st.st_mode):
                    raise BridgeError(
                        ErrorCode.FILE_NOT_FOUND, "not a file: a directory; use ListFiles", path=rel
                    )
                if not stat.S_ISREG(st.st_mode):
                    raise BridgeError(
                        ErrorCode.PERMISSION_DENIED,
                        "not a regular file (FIFO, socket or device); refused without opening",
                        path=rel,
                    )
                real_path = "/".join(done)
                self.check_sensitive(real_path)
                fd = self._open_checked(name, fds[-1], _FILE_FLAGS, st, rel)
                return OpenedFile(fd=fd, real_path=real_path, size=st.st_size)
            raise BridgeError(
                ErrorCode.FILE_NOT_FOUND, "not a file: a directory; use ListFiles", path=rel
            )
        finally:
            for fd in fds:
                os.close(fd)

    @staticmethod
    def _read_link(name: str, dir_fd: int, rel: str) -> str:
        """The link's target; the link replaced by a file or removed since lstat (EINVAL,
        ENOENT) means the path is being swapped under us."""
        try:
            return os.readlink(name, dir_fd=dir_fd)
        except OSError as exc:
            raise BridgeError(
                ErrorCode.PATH_TRAVERSAL, "path changed while it was being opened", path=rel
            ) from exc

    @staticmethod
    def _open_checked(name: str, dir_fd: int, flags: int, st: os.stat_result, rel: str) -> int:
        """Open `name` without following a symlink and prove it is the object lstat saw."""
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                raise BridgeError(
                    ErrorCode.PATH_TRAVERSAL, "path changed while it was being opened", path=rel
                ) from exc
            if exc.errno == errno.EACCES:
                raise BridgeError(
                    ErrorCode.PERMISSION_DENIED, "permission denied", path=rel
                ) from exc
            raise
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino) or stat.S_IFMT(
            opened.st_mode
        ) != stat.S_IFMT(st.st_mode):
            os.close(fd)
            raise BridgeError(
                ErrorCode.PATH_TRAVERSAL, "path changed while it was being opened", path=rel
            )
        return fd

    def safe_for_listing(self, rel: str) -> bool:
        """Cheap lstat-based check for ListFiles: a regular file, or a symlink staying inside."""
        full = os.path.join(self.root, rel)
        try:
            st = os.lstat(full)
        except OSError:
            return False
        if stat.S_ISREG(st.st_mode):
            return True
        if not stat.S_ISLNK(st.st_mode):
            return False
        real = os.path.realpath(full)
        root = str(self.root)
        if not real.startswith(root + "/") or not os.path.isfile(real):
            return False
        return not self.is_sensitive(real[len(root) + 1 :])

    def regular_file(self, rel: str) -> bool:
        """A regular file reached without any symlink: safe to hand to a tool that follows links."""
        full = os.path.join(self.root, rel)
        try:
            st = os.lstat(full)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and os.path.realpath(full) == full
