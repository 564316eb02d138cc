"""The daemon's unacknowledged results and events, kept for re-sending and bounded in bytes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from opik_connect.protocol import FrameKind


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One buffered frame: its payload is kept as the canonical JSON that is signed and sent."""

    kind: FrameKind
    type_name: str
    payload_json: str
    size: int = field(init=False)
    """The payload's UTF-8 size, counted once: the outbox and the caches budget by it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", utf8_size(self.payload_json))


def utf8_size(text: str) -> int:
    """len(text.encode()) without encoding an ASCII text (most frames) again."""
    return len(text) if text.isascii() else len(text.encode())


class Outbox:
    """Frames sent but not yet acknowledged, re-sent in order after a reconnect.

    Admission is bounded by max_bytes (see `full`); an entry is never dropped once admitted,
    because what it carries (a result of work done, a decision) has no other copy here.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, OutboxEntry] = OrderedDict()

    @property
    def full(self) -> bool:
        return self.bytes >= self.max_bytes

    def put(self, msg_id: str, entry: OutboxEntry) -> None:
        self.pop(msg_id)
        self._entries[msg_id] = entry
        self.bytes += entry.size + len(msg_id)

    def get(self, msg_id: str) -> OutboxEntry | None:
        return self._entries.get(msg_id)

    def pop(self, msg_id: str) -> OutboxEntry | None:
        entry = self._entries.pop(msg_id, None)
        if entry is not None:
            self.bytes -= entry.size + len(msg_id)
        return entry

    def items(self) -> Iterator[tuple[str, OutboxEntry]]:
        return iter(list(self._entries.items()))

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)
