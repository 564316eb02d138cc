"""What redaction changed in a file, kept by the hash of its bytes so later searches skip it."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

Splice = tuple[int, int, bytes]
"""Bytes [start, end) of the raw text are replaced by the given bytes (one redacted line)."""
MAX_CACHED_SPLICE_BYTES = 4 << 20
"""The cache's budget, counted as the memory its entries take (their Python objects too)."""
ENTRY_OVERHEAD_BYTES = 200
"""An entry's key, its slot and its tuple of splices."""
SPLICE_OVERHEAD_BYTES = 160
"""One splice's tuple, its two ints and its bytes' header (the text is counted apart)."""


def content_key(raw: bytes) -> bytes:
    """A collision-resistant digest of the raw bytes: the same bytes redact the same way, so
    an entry can never be stale, whatever happened to the file since."""
    return hashlib.blake2b(raw, digest_size=16).digest()


def apply_splices(raw: bytes, splices: tuple[Splice, ...]) -> bytes:
    pieces: list[bytes] = []
    done = 0
    for start, end, new in splices:
        pieces += [raw[done:start], new]
        done = end
    return b"".join([*pieces, raw[done:]])


def entry_bytes(splices: tuple[Splice, ...]) -> int:
    """What one entry costs in memory: 25,000 short splices cost more than their text."""
    return ENTRY_OVERHEAD_BYTES + sum(SPLICE_OVERHEAD_BYTES + len(new) for _, _, new in splices)


class RedactionCache:
    """Least recently used first out, bounded by the memory its entries take; shared by the
    searches' worker threads."""

    def __init__(self, max_bytes: int = MAX_CACHED_SPLICE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, tuple[Splice, ...]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: bytes) -> tuple[Splice, ...] | None:
        with self._lock:
            splices = self._entries.get(key)
            if splices is not None:
                self._entries.move_to_end(key)
            return splices

    def put(self, key: bytes, splices: tuple[Splice, ...]) -> None:
        size = entry_bytes(splices)
        with self._lock:
            if key in self._entries or size > self.max_bytes:
                return
            self._entries[key] = splices
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._entries.popitem(last=False)
                self._bytes -= entry_bytes(old)
