"""Reading one window of lines from an open file: UTF-8 checked, size capped as Opik caps it."""

from __future__ import annotations

import codecs
import contextlib
import os
from dataclasses import dataclass

from opik_connect.connect.sandbox.secret_redaction import private_key_open_at_end
from opik_connect.protocol import MAX_FRAME_BYTES, BridgeError, ErrorCode

BINARY_SNIFF_BYTES = 8192
READ_CHUNK_BYTES = 1 << 20
MAX_CONTENT_CHARS = 512_000
"""Opik's cap on ReadFile's content (128,000 tokens of 4 characters): cut there, truncated."""
MAX_CONTENT_WIRE_BYTES = MAX_FRAME_BYTES - 64 * 1024
"""The content's JSON size in a result frame: text that encodes large (non-ASCII, control
characters) is cut shorter, so a ReadFile result always fits in one frame."""
MAX_LINE_BYTES = MAX_CONTENT_WIRE_BYTES + 64 * 1024
"""Bytes of one line kept for redaction: more than any answer can hold, plus a margin so a
secret running across the cut is still seen whole by redaction."""
WHOLE_READ_BYTES = 256 * 1024
"""A file up to this size (by the opener's lstat) is read in one call and cut in memory: no
line of it can reach MAX_LINE_BYTES, nor all of it MAX_CONTENT_CHARS."""


@dataclass
class Window:
    pieces: list[str]
    """The window's text in order: single lines, or runs of whole lines decoded at once."""
    count: int
    """How many lines the pieces hold."""
    total_lines: int
    key_open_at_start: bool
    line_cut: bool = False
    """A line was longer than MAX_LINE_BYTES: its end is missing."""


def read_window(fd: int, offset: int, limit: int, path: str, size: int | None = None) -> Window:
    """The `limit` lines from line `offset` of the file at the start of `fd`, UTF-8 checked,
    with every line counted. `size` (the opener's lstat) lets a small file be read with one
    read(2) of size + 1 bytes: getting exactly `size` back means the whole file is in hand.
    Anything else (it changed size, it is not strict UTF-8) is streamed from the start."""
    if size is not None and size <= WHOLE_READ_BYTES:
        data = os.read(fd, size + 1)
        if len(data) == size:
            window = _whole_file_window(data, offset, limit, path)
            if window is not None:
                return window
        os.lseek(fd, 0, os.SEEK_SET)
    return _stream_window(fd, offset, limit, path)


def _whole_file_window(data: bytes, offset: int, limit: int, path: str) -> Window | None:
    """The window of a file held whole, as _stream_window gives it; None when the first bytes
    that are not UTF-8 are the last three or fewer (the stream's incremental decoder holds them
    back as a character maybe cut, then drops them)."""
    if data.find(b"\0", 0, BINARY_SNIFF_BYTES) >= 0:
        raise BridgeError(ErrorCode.BINARY_FILE, "binary file (NUL byte)", path=path)
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3:
            return None
        raise BridgeError(ErrorCode.BINARY_FILE, "file is not UTF-8 text", path=path) from exc
    newlines = data.count(b"\n")
    total = newlines + (1 if data and data[-1] != 10 else 0)
    if newlines < offset:
        return Window([], 0, total, private_key_open_at_end(data, False))
    start = _after_newlines(data, 0, offset)
    key_open = bool(offset) and private_key_open_at_end(memoryview(data)[:start], False)
    end, count = len(data), total - offset
    if newlines - offset >= limit:
        end, count = _after_newlines(data, start, limit), limit
    if (start, end) != (0, len(data)):
        text = text[start:end] if text.isascii() else str(memoryview(data)[start:end], "utf-8")
    return Window([text], count, total, key_open)


def _after_newlines(text: bytes, pos: int, count: int) -> int:
    """Where the line after the `count`-th newline from `pos` starts (there are that many):
    blocks are skipped on their newline count (in C), halved near the spot, then a few lines
    are stepped over one by one."""
    step = 8192
    while count > 64:
        here = text.count(b"\n", pos, pos + step)
        if here < count:
            count, pos = count - here, pos + step
        elif step > 256:
            step //= 2
        else:
            break
    for _ in range(count):
        pos = text.index(b"\n", pos) + 1
    return pos


def _stream_window(fd: int, offset: int, limit: int, path: str) -> Window:
    """Stream the file once: validate UTF-8, count lines, keep only the requested window.

    Memory stays bounded by the chunk size and the window, whatever the file size.
    """
    end = offset + limit
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    pieces: list[str] = []
    count = 0
    current = bytearray()
    cut = False
    chars = 0
    full = False
    line_no = 0
    key_open = False
    key_tail = b""
    seen_bytes = False
    ends_with_newline = True

    line_cut = False

    def finish_line(with_newline: bool) -> None:
        nonlocal current, cut, chars, full, count, line_cut
        text = current.decode("utf-8", errors="ignore")
        line_cut = line_cut or cut
        pieces.append(text + ("\n" if with_newline else ""))
        count += 1
        chars += len(pieces[-1])
        full = chars >= MAX_CONTENT_CHARS
        current = bytearray()
        cut = False

    while data := os.read(fd, READ_CHUNK_BYTES):
        if not seen_bytes and b"\0" in data[:BINARY_SNIFF_BYTES]:
            raise BridgeError(ErrorCode.BINARY_FILE, "binary file (NUL byte)", path=path)
        try:
            decoder.decode(data)
        except UnicodeDecodeError as exc:
            raise BridgeError(ErrorCode.BINARY_FILE, "file is not UTF-8 text", path=path) from exc
        seen_bytes = True
        ends_with_newline = data.endswith(b"\n")
        pos = 0
        size = len(data)
        while pos < size:
            if line_no < offset:
                need = offset - line_no
                here = data.count(b"\n", pos)
                if here < need:
                    line_no += here
                    stop = size
                else:
                    nl = pos - 1
                    for _ in range(need):
                        nl = data.find(b"\n", nl + 1)
                    line_no = offset
                    stop = nl + 1
                segment = data[pos:stop]
                key_open = private_key_open_at_end(key_tail + segment, key_open)
                key_tail = segment[-96:]
                pos = stop
                continue
            if line_no >= end or full:
                line_no += data.count(b"\n", pos)
                pos = size
                continue
            if not current and not cut:
                taken = _whole_lines(data, pos, end - line_no, MAX_CONTENT_CHARS - chars)
                if taken is not None:
                    block, got, pos = taken
                    pieces.append(block)
                    count += got
                    chars += len(block)
                    full = chars >= MAX_CONTENT_CHARS
                    line_no += got
                    continue
            nl = data.find(b"\n", pos)
            stop = size if nl == -1 else nl + 1
            piece = data[pos : stop - 1 if nl != -1 else stop]
            room = MAX_LINE_BYTES - len(current)
            if len(piece) > room:
                piece = piece[: max(room, 0)]
                cut = True
            current += piece
            pos = stop
            if nl != -1:
                finish_line(True)
                line_no += 1
    with contextlib.suppress(UnicodeDecodeError):
        decoder.decode(b"", final=True)
    total = line_no + (1 if seen_bytes and not ends_with_newline else 0)
    if seen_bytes and not ends_with_newline and offset <= line_no < end and not full:
        finish_line(False)
    return Window(
        pieces=pieces,
        count=count,
        total_lines=total,
        key_open_at_start=key_open,
        line_cut=line_cut,
    )


def fit_content(content: str) -> tuple[str, bool]:
    """The content cut to MAX_CONTENT_CHARS, then to MAX_CONTENT_WIRE_BYTES of JSON; and
    whether it was cut. Cheap for small content: no character encodes to more than 6 bytes."""
    cut = len(content) > MAX_CONTENT_CHARS
    if cut:
        content = content[:MAX_CONTENT_CHARS]
    if 6 * len(content) + 2 <= MAX_CONTENT_WIRE_BYTES:
        return content, cut
    size = json_size(content)
    while size > MAX_CONTENT_WIRE_BYTES:
        content = content[: len(content) * MAX_CONTENT_WIRE_BYTES // size - 6]
        size = json_size(content)
        cut = True
    return content, cut


_SHORT_ESCAPES = b'"\\\b\t\n\f\r'
_LONG_ESCAPES = bytes(sorted(set(range(32)) - set(_SHORT_ESCAPES)))
_UNESCAPED = bytes(sorted(set(range(256)) - set(_SHORT_ESCAPES) - set(_LONG_ESCAPES)))


def json_size(text: str) -> int:
    """len(json.dumps(text, ensure_ascii=False).encode()), from the UTF-8 bytes alone: a quote,
    a backslash and \\b \\t \\n \\f \\r take 2 bytes, other control characters 6 (\\u00XX),
    and no byte of a multi-byte character is one of them. 8x faster than encoding the JSON."""
    raw = text.encode()
    escaped = raw.translate(None, _UNESCAPED)
    return len(raw) + 2 + len(escaped) + 4 * len(escaped.translate(None, _SHORT_ESCAPES))


def _whole_lines(data: bytes, pos: int, want: int, room: int) -> tuple[str, int, int] | None:
    """Up to `want` complete lines from `pos` in one decode, as (text, lines, next pos); None
    when a line is too long, the content cap would be passed, or no newline follows (the
    line-by-line path handles those)."""
    got = data.count(b"\n", pos)
    if got <= want:  # the window runs past this chunk: take every line in it
        nl = data.rfind(b"\n", pos)
    else:
        got, nl = want, pos - 1
        for _ in range(want):
            nl = data.find(b"\n", nl + 1)
    if not got or nl + 1 - pos > room:
        return None
    block = data[pos : nl + 1].decode("utf-8")
    if len(block) > MAX_LINE_BYTES and max(map(len, block.split("\n"))) > MAX_LINE_BYTES:
        return None
    return block, got, nl + 1
