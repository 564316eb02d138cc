"""Which watcher batch a search waits for: the one reading the queue, or the next one when
events are queued unread, never one for a change made after the search started."""

from __future__ import annotations

from pathlib import Path

from opik_connect.connect.sandbox.inotify import Inotify
from opik_connect.connect.sandbox.watcher_batches import WatcherBatches


async def test_a_search_waits_for_the_batch_that_holds_what_is_queued(tmp_path: Path) -> None:
    inotify = Inotify()
    try:
        inotify.add_directory(str(tmp_path), "")
        batches = WatcherBatches(inotify.fd)
        assert batches.settled() is None  # nothing queued, no batch in hand
        (tmp_path / "a.py").write_text("a\n")
        before_read = batches.settled()  # queued: the next batch holds it
        batches.reading()
        (tmp_path / "b.py").write_text("b\n")
        while_reading = batches.settled()  # this batch reads until the queue is empty
        assert inotify.read()
        batches.read()
        in_hand = batches.settled()  # read, not applied yet
        (tmp_path / "c.py").write_text("c\n")
        queued_after = batches.settled()  # came after the read: the next batch holds it
        batches.applied()
        assert before_read is not None and before_read.done()
        assert while_reading is not None and while_reading.done()
        assert in_hand is not None and in_hand.done()
        assert queued_after is not None and not queued_after.done()
        assert batches.settled() is not None  # c.py is still queued
        batches.reading()
        assert inotify.read()
        batches.read()
        batches.applied()
        assert queued_after.done() and batches.settled() is None
    finally:
        inotify.close()


async def test_a_watcher_that_stops_releases_every_waiting_search(tmp_path: Path) -> None:
    inotify = Inotify()
    try:
        inotify.add_directory(str(tmp_path), "")
        batches = WatcherBatches(inotify.fd)
        (tmp_path / "a.py").write_text("a\n")
        waiting = batches.settled()
        gave_up = batches.settled()
        assert waiting is not None and gave_up is not None
        gave_up.cancel()  # a search that stopped waiting
        batches.close()
        assert waiting.done() and waiting.result() is None
    finally:
        inotify.close()
