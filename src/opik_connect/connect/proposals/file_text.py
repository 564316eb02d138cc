"""A file as proposals see it: read only through the sandbox, decoded, line endings remembered.

`read_current` reads only through the sandbox's race-free opener and only what git shows (as
ReadFile does), so no path can escape the root, touch a secret, an ignored file or a FIFO. Text is
handled with "\\n" internally; a file that used CRLF is written back with CRLF, and a UTF-8 BOM
is kept.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from opik_connect.connect.sandbox.policy import PathPolicy, normalize_relative
from opik_connect.protocol import BridgeError, ErrorCode

ReadCurrent = Callable[[str], "FileText"]
"""A root-relative path -> the file as it is now (text None when missing), or BridgeError."""
Visible = Callable[[str, bool], bool]
"""(root-relative path, exists) -> whether git shows it: tracked or untracked-not-ignored when it
exists, not ignored when it does not (a new file there would be committed visibly)."""

MAX_PROPOSAL_FILE_BYTES = 1 << 20
"""Proposals edit source files; a larger file is refused (limit_reached) rather than read whole."""
NOT_VISIBLE = "file not found (or ignored by git)"
"""ReadFile's message for a path git does not show; the same words here reveal nothing more."""

BOM = "\ufeff"


@dataclass(frozen=True)
class FileText:
    """A file's content as the engine sees it: "\\n" lines, BOM and CRLF remembered separately."""

    path: str
    text: str | None
    """None when the file does not exist."""
    crlf: bool = False
    bom: bool = False

    @property
    def exists(self) -> bool:
        return self.text is not None

    def encode(self, text: str) -> bytes:
        body = text.replace("\n", "\r\n") if self.crlf else text
        return ((BOM if self.bom else "") + body).encode("utf-8")


def decode_file(path: str, data: bytes | None) -> FileText:
    """Bytes on disk -> FileText; non-UTF-8 content is refused as binary_file."""
    if data is None:
        return FileText(path, None)
    if b"\0" in data[:8192]:
        raise BridgeError(ErrorCode.BINARY_FILE, f"{path} is a binary file", path=path)
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BridgeError(ErrorCode.BINARY_FILE, f"{path} is not UTF-8", path=path) from exc
    bom = raw.startswith(BOM)
    if bom:
        raw = raw[1:]
    crlf = raw.count("\r\n") > 0 and raw.count("\r\n") >= raw.count("\n") - raw.count("\r\n")
    return FileText(path, raw.replace("\r\n", "\n"), crlf=crlf, bom=bom)


def content_hash(ft: FileText) -> str | None:
    """The hash staleness compares: of the bytes as they would be written, None when missing."""
    if ft.text is None:
        return None
    return hashlib.sha256(ft.encode(ft.text)).hexdigest()


def _read_fd(fd: int, path: str) -> bytes:
    """At most the cap from an opened file; a file that grew past it is refused, not cut."""
    chunks, size = [], 0
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_PROPOSAL_FILE_BYTES:
            raise _too_big(path)
    return b"".join(chunks)


def _too_big(path: str) -> BridgeError:
    return BridgeError(
        ErrorCode.LIMIT_REACHED,
        f"{path} is larger than {MAX_PROPOSAL_FILE_BYTES} bytes; proposals edit source files",
        path=path,
        limit=MAX_PROPOSAL_FILE_BYTES,
    )


def read_current(policy: PathPolicy, visible: Visible, path: str) -> FileText:
    """Reads one file as ReadFile would; a missing (not ignored) file is FileText(text=None).

    Visibility is asked before the file is touched, so an ignored path answers file_not_found
    whether or not it exists, a FIFO, socket or device, and past a symlink swap, by
    permission_denied or path_traversal from the opener, never by a read that hangs.
    """
    rel = normalize_relative(path)
    if not rel:
        raise BridgeError(ErrorCode.INVALID_ARGS, "a proposal must name a file", path=path)
    policy.check_sensitive(rel)
    listed = visible(rel, True)
    if not listed and not visible(rel, False):
        real = os.path.realpath(policy.root / rel)
        if not real.startswith(f"{policy.root}/"):
            raise BridgeError(
                ErrorCode.PATH_TRAVERSAL, "path leaves the root through a symlink", path=path
            )
        raise BridgeError(ErrorCode.FILE_NOT_FOUND, NOT_VISIBLE, path=path)
    try:
        opened = policy.open_file(rel)
    except BridgeError as exc:
        if exc.code == ErrorCode.FILE_NOT_FOUND:
            return FileText(path, None)
        raise
    try:
        if not listed or (opened.real_path != rel and not visible(opened.real_path, True)):
            raise BridgeError(ErrorCode.FILE_NOT_FOUND, NOT_VISIBLE, path=path)
        if opened.size > MAX_PROPOSAL_FILE_BYTES:
            raise _too_big(path)
        data = _read_fd(opened.fd, path)
    finally:
        os.close(opened.fd)
    return decode_file(path, data)
