"""A small file read in one call and cut in memory gives exactly the streamed window."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opik_connect.connect.sandbox import file_window
from opik_connect.connect.sandbox.file_window import (
    WHOLE_READ_BYTES,
    Window,
    _stream_window,
    _whole_file_window,
    fit_content,
    json_size,
    read_window,
)
from opik_connect.protocol import BridgeError

FRAGMENTS = [
    b"a",
    b"line",
    b" ",
    b"\n",
    b"\r\n",
    b"\r",
    "é".encode(),
    "€".encode(),
    "\U0001f600".encode(),
    b"\0",
    b"\xff",
    b"\xe2\x82",
    b"\xf0\x9f",
    b"\xed\xa0",
    b"\xf4\x90",
    b"\xc0",
    b"-----BEGIN RSA PRIVATE KEY-----\n",
    b"-----END RSA PRIVATE KEY-----\n",
    b"QUJDZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXowMTIzNDU2Nzg5QUJDRA==\n",
    b"password = 'hunter2x9'\n",
]
"""Pieces of text that take every branch: line ends of each kind, multi-byte characters, a NUL,
invalid and cut UTF-8, key block markers and body, a secret."""

Outcome = tuple[str, int, int, bool, bool] | str


def outcome(window: Window) -> tuple[str, int, int, bool, bool]:
    return (
        "".join(window.pieces),
        window.count,
        window.total_lines,
        window.key_open_at_start,
        window.line_cut,
    )


@contextmanager
def file_with(data: bytes) -> Iterator[int]:
    """A real file holding `data`, opened for reading."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.txt"
        path.write_bytes(data)
        fd = os.open(path, os.O_RDONLY)
        try:
            yield fd
        finally:
            os.close(fd)


def read(data: bytes, offset: int, limit: int, size: int | None) -> Outcome:
    with file_with(data) as fd:
        try:
            return outcome(read_window(fd, offset, limit, "f.txt", size))
        except BridgeError as exc:
            return exc.code


def streamed(data: bytes, offset: int, limit: int) -> Outcome:
    with file_with(data) as fd:
        try:
            return outcome(_stream_window(fd, offset, limit, "f.txt"))
        except BridgeError as exc:
            return exc.code


contents = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(b"".join)
windows = st.tuples(st.integers(0, 12), st.integers(0, 14))


@settings(max_examples=400, deadline=None)
@given(data=contents, window=windows, size_error=st.sampled_from([0, 0, 0, -1, 1]))
def test_one_read_gives_the_streamed_window(
    data: bytes, window: tuple[int, int], size_error: int
) -> None:
    """Whatever the bytes and the window, and when the opener's size is stale (the file grew
    or shrank since): the answer, or the error code, of the stream."""
    offset, limit = window
    size = max(len(data) + size_error, 0)
    assert read(data, offset, limit, size) == streamed(data, offset, limit)


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(["x", "é", "\U0001f600", "\n", "\r\n", "k = 1\n", "-----END RSA"]),
        max_size=40,
    ).map("".join),
    window=windows,
)
def test_text_held_whole_is_cut_without_the_stream(text: str, window: tuple[int, int]) -> None:
    """Strict UTF-8 without a NUL is answered from memory (not handed back to the stream)."""
    offset, limit = window
    found = _whole_file_window(text.encode(), offset, limit, "f.txt")
    assert found is not None
    assert outcome(found) == streamed(text.encode(), offset, limit)


def counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes asked of os.read from now on."""
    asked: list[int] = []
    real_read = os.read

    def spy(fd: int, n: int) -> bytes:
        asked.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(file_window.os, "read", spy)
    return asked


@pytest.mark.parametrize("size", [0, 1, WHOLE_READ_BYTES - 1, WHOLE_READ_BYTES])
def test_a_file_up_to_the_threshold_is_read_in_one_call(
    monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    data = (b"x" * 99 + b"\n") * (size // 100) + b"y" * (size % 100)
    with file_with(data) as fd:
        asked = counting_reads(monkeypatch)
        window = read_window(fd, 0, 10_000, "f.txt", size)
    assert asked == [size + 1]
    assert outcome(window) == streamed(data, 0, 10_000)


@pytest.mark.parametrize(
    "data", [b"caf\xe9 au lait\n", b"\xff" * 4, b"ok\n\xed\xa0\x80\n", b"a\0b"]
)
def test_a_small_file_that_is_not_text_is_refused_from_one_read(
    monkeypatch: pytest.MonkeyPatch, data: bytes
) -> None:
    with file_with(data) as fd:
        asked = counting_reads(monkeypatch)
        with pytest.raises(BridgeError) as info:
            read_window(fd, 0, 10, "f.txt", len(data))
    assert (info.value.code, asked) == ("binary_file", [len(data) + 1])
    assert streamed(data, 0, 10) == "binary_file"


def test_a_file_over_the_threshold_is_streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"z" * (WHOLE_READ_BYTES + 1)
    with file_with(data) as fd:
        asked = counting_reads(monkeypatch)
        window = read_window(fd, 0, 10, "f.txt", len(data))
    assert asked == [file_window.READ_CHUNK_BYTES] * 2
    assert outcome(window) == (data.decode(), 1, 1, False, False)


def test_a_file_that_grew_since_its_lstat_is_streamed_whole() -> None:
    data = b"first\nsecond\nthird"
    assert read(data, 1, 5, 6) == ("second\nthird", 2, 3, False, False)


@pytest.mark.parametrize("tail", [b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0"])
def test_a_utf8_character_cut_at_the_end_is_dropped_as_the_stream_drops_it(tail: bytes) -> None:
    data = b"caf\n" + tail
    assert _whole_file_window(data, 0, 10, "f.txt") is None
    assert read(data, 0, 10, len(data)) == ("caf\n", 2, 2, False, False)


def test_a_window_starting_inside_a_key_block_says_so() -> None:
    data = b"a\n-----BEGIN RSA PRIVATE KEY-----\nQUJD\n-----END RSA PRIVATE KEY-----\nb\n"
    assert read(data, 2, 1, len(data)) == ("QUJD\n", 1, 5, True, False)
    assert read(data, 4, 1, len(data)) == ("b\n", 1, 5, False, False)
    assert read(data, 9, 1, len(data)) == ("", 0, 5, False, False)


@settings(max_examples=150, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 300), min_size=60, max_size=3000),
    final_newline=st.booleans(),
    offset=st.integers(0, 3100),
    limit=st.integers(0, 3100),
)
def test_far_windows_of_many_lines_are_found_as_the_stream_finds_them(
    lengths: list[int], final_newline: bool, offset: int, limit: int
) -> None:
    """Windows far into a file (lines skipped by the block, then one by one)."""
    data = b"\n".join(b"%d" % i + b"x" * n for i, n in enumerate(lengths))
    data += b"\n" if final_newline else b""
    assert read(data, offset, limit, len(data)) == streamed(data, offset, limit)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8")) | st.text('"\\\x00\x01\x1f\x7f\n\té€'))
def test_json_size_is_the_length_of_the_encoded_json(text: str) -> None:
    assert json_size(text) == len(json.dumps(text, ensure_ascii=False).encode())


@pytest.mark.parametrize(
    "content",
    [
        "a" * 200_000,
        "\x01" * 200_000,
        ("\U0001f600" * 10 + "\n") * 20_000,
        ('"\\' * 1000 + "\n") * 100,
        "é\x02" * 300_000,
    ],
)
def test_content_is_cut_to_its_json_budget(content: str) -> None:
    """What the frame holds decides the cut: the JSON of the answer stays within budget,
    and a content that fits is not cut."""
    fitted, cut = fit_content(content)
    size = len(json.dumps(fitted, ensure_ascii=False).encode())
    assert size <= file_window.MAX_CONTENT_WIRE_BYTES
    assert cut == (fitted != content)
    assert content.startswith(fitted)
    if cut and len(fitted) < file_window.MAX_CONTENT_CHARS:
        assert size > file_window.MAX_CONTENT_WIRE_BYTES * 0.9
