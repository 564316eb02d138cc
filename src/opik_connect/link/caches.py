"""Bounded memories of the link: ids already handled, and entries kept up to a byte budget."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


class BoundedIds:
    """A set of ids already handled, bounded in count (oldest forgotten first)."""

    def __init__(self, max_ids: int) -> None:
        self.max_ids = max_ids
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, key: str) -> None:
        self._ids[key] = None
        while len(self._ids) > self.max_ids:
            self._ids.popitem(last=False)

    def discard(self, key: str) -> None:
        self._ids.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def __len__(self) -> int:
        return len(self._ids)


class ByteBoundedMap(Generic[V]):
    """Entries in insertion order, each with its size in bytes, the oldest evicted beyond
    max_bytes: a peer that never stops sending cannot grow this without bound."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[V, int]] = OrderedDict()
        """Key -> (value, its size counted against max_bytes)."""

    def put(self, key: str, value: V, size: int) -> None:
        self.pop(key)
        size += len(key)
        self._entries[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes and self._entries:
            _, (_, oldest_size) = self._entries.popitem(last=False)
            self.bytes -= oldest_size

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def pop(self, key: str) -> V | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self.bytes -= entry[1]
        return entry[0]

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
