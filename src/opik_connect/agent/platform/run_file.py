"""Where a running embedded platform can be found: its URL and API token in a 0600 JSON file.

`opik-connect ask` in another terminal reads it, so the user never copies a token by hand. The
daemon writes one per project (the project's state dir) and one per user (the latest started);
`ask` prefers the file of the project it is run in, and falls back to a standalone
`opik-connect platform` running as the same user.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pydantic import BaseModel, ValidationError

from opik_connect.config import project_state_dir, user_state_dir
from opik_connect.private_files import write_private_json

RUN_FILE_NAME = "platform.json"
SERVER_RUN_FILE_NAME = "platform-server.json"
"""The standalone `opik-connect platform`'s own file; an embedded daemon's may replace the other."""


class PlatformRunFile(BaseModel):
    url: str
    """The websocket base URL, e.g. ws://127.0.0.1:41234 (HTTP reads use http:// on it)."""
    token: str
    pid: int
    started_at: float
    root: str | None = None


def run_file_paths(root: Path | None) -> list[Path]:
    """Most specific first: the project's file, then the user's."""
    paths = [project_state_dir(root) / RUN_FILE_NAME] if root is not None else []
    return [*paths, user_state_dir() / RUN_FILE_NAME]


def write_run_files(url: str, token: str, root: Path | None = None) -> list[Path]:
    record = PlatformRunFile(
        url=url,
        token=token,
        pid=os.getpid(),
        started_at=time.time(),
        root=str(root) if root else None,
    )
    paths = run_file_paths(root)
    for path in paths:
        write_private_json(path, record.model_dump())
    return paths


def remove_run_files(paths: list[Path]) -> None:
    """Remove only files this process wrote: another daemon may have replaced the user's file."""
    for path in paths:
        found = _read(path)
        if found is not None and found.pid == os.getpid():
            path.unlink(missing_ok=True)


def find_run_file(root: Path | None) -> PlatformRunFile | None:
    """The first run file whose process is still alive; a standalone platform's comes last."""
    for path in [*run_file_paths(root), user_state_dir() / SERVER_RUN_FILE_NAME]:
        found = _read(path)
        if found is not None and _alive(found.pid):
            return found
    return None


def _read(path: Path) -> PlatformRunFile | None:
    try:
        return PlatformRunFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
