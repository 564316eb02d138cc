"""The daemon counts the visible files once for the banner and the hello, and again after a
change is reported."""

from __future__ import annotations

from pathlib import Path

from opik_connect.config import ProjectConfig
from opik_connect.connect.daemon import Daemon
from opik_connect.connect.sandbox.read_commands import Sandbox
from opik_connect.protocol import FileChange, FilesChanged
from tests.sandbox_repo import make_repo


async def test_summary_is_shared_until_files_change(tmp_path: Path, monkeypatch) -> None:
    root = make_repo(tmp_path / "proj")
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    daemon = Daemon(root, ProjectConfig(), watch=False)
    daemon.sandbox = await Sandbox.open(root, ProjectConfig())
    counted: list[int] = []
    real_summary = daemon.sandbox.summary

    async def counting_summary():
        counted.append(1)
        return await real_summary()

    monkeypatch.setattr(daemon.sandbox, "summary", counting_summary)
    first = await daemon.root_summary()
    assert await daemon.root_summary() is first
    assert len(counted) == 1

    (root / "added.py").write_text("x = 1\n")
    daemon.file_listeners.clear()
    sent: list[FilesChanged] = []

    async def send_event(_type: str, event: FilesChanged, **_kw: object) -> str:
        sent.append(event)
        return "id"

    monkeypatch.setattr(daemon, "send_event", send_event)
    await daemon.sandbox.files_changed(["added.py"])  # as the watcher does, then tells the daemon
    await daemon._files_changed(FilesChanged(changes=[FileChange(path="added.py", change="added")]))
    after = await daemon.root_summary()
    assert len(counted) == 2
    assert after.visible_files == first.visible_files + 1
