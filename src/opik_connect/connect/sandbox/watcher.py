"""Watch the root and report changes to visible files as FilesChanged batches.

watchfiles waits on inotify (no polling, no CPU when idle); each debounced batch is filtered by the
sandbox's rules, so ignored, sensitive and .git/ paths are never reported.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

from watchfiles import Change, awatch

from opik_connect.connect.sandbox.read_commands import Sandbox
from opik_connect.protocol import FileChange, FilesChanged

DEFAULT_DEBOUNCE_MS = 200

ChangeKind = Literal["added", "modified", "deleted"]


def _kind(full: str, seen: set[Change]) -> ChangeKind | None:
    """What happened to one path over a batch, judged by what is on disk now; None for a dir."""
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return "deleted"
    if stat.S_ISDIR(st.st_mode):
        return None
    return "added" if Change.added in seen else "modified"


def _kinds(prefix: str, seen: dict[str, set[Change]]) -> dict[str, ChangeKind | None]:
    return {rel: _kind(prefix + rel, changes) for rel, changes in seen.items()}


async def watch_visible_changes(
    sandbox: Sandbox, stop: asyncio.Event, *, debounce_ms: int = DEFAULT_DEBOUNCE_MS
) -> AsyncIterator[FilesChanged]:
    """Yield one FilesChanged per debounced batch that touches a visible file, until `stop`."""
    root = str(sandbox.root)
    prefix = root + os.sep

    def relevant(_change: Change, path: str) -> bool:
        return path.startswith(prefix) and not sandbox.policy.is_sensitive(path[len(prefix) :])

    async for batch in awatch(
        root,
        watch_filter=relevant,
        debounce=debounce_ms,
        stop_event=stop,
        force_polling=False,
        recursive=True,
    ):
        seen: dict[str, set[Change]] = {}
        for change, path in batch:
            seen.setdefault(path[len(prefix) :], set()).add(change)
        sandbox.invalidate()
        kinds = await asyncio.to_thread(_kinds, prefix, seen)
        candidates = sorted(rel for rel, kind in kinds.items() if kind is not None)
        ignored = await sandbox.repo.ignored(candidates)
        changes = [
            FileChange(path=rel, change=kind)
            for rel, kind in sorted(kinds.items())
            if kind is not None and rel not in ignored
        ]
        if changes:
            yield FilesChanged(changes=changes)


async def run_watcher(
    sandbox: Sandbox,
    on_change: Callable[[FilesChanged], Awaitable[None]],
    stop: asyncio.Event,
    *,
    debounce_ms: int = DEFAULT_DEBOUNCE_MS,
) -> None:
    """Call `on_change` for each batch until `stop` is set (the daemon sends it as an event)."""
    async for batch in watch_visible_changes(sandbox, stop, debounce_ms=debounce_ms):
        await on_change(batch)
