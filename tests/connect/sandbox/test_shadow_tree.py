"""The shadow tree's life: private, removed with its daemon, and after a kill by the next one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from opik_connect.connect.sandbox import shadow_tree
from opik_connect.connect.sandbox.shadow_tree import ShadowTree

KILLED = """
import os
from opik_connect.connect.sandbox.shadow_tree import ShadowTree
tree = ShadowTree.create()
tree.write("a/b.py", b"x = 1\\n")
print(tree.root, flush=True)
os._exit(0)  # no finalizer runs: as after a kill
"""


@pytest.fixture
def state(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path))
    return tmp_path / "shadows"


def test_a_tree_is_private_and_gone_when_closed(state: Path) -> None:
    tree = ShadowTree.create()
    tree.write("pkg/a.py", b"redacted\n")
    tree.write("pkg/a.py", b"again\n")
    assert tree.root.parent == state and tree.root.stat().st_mode & 0o777 == 0o700
    assert (tree.root / "pkg" / "a.py").read_bytes() == b"again\n"
    assert sorted(p.name for p in (tree.root / "pkg").iterdir()) == ["a.py"]
    tree.remove("pkg/a.py")
    tree.remove("pkg/missing.py")
    tree.close()
    assert list(state.iterdir()) == []


def test_a_killed_daemons_tree_is_removed_by_the_next_one(state: Path, monkeypatch) -> None:
    env = {**os.environ}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED], env=env, capture_output=True, text=True, check=True
    )
    orphan = Path(killed.stdout.strip())
    live = ShadowTree.create()
    assert orphan.is_dir()  # too recent to be taken for an orphan
    monkeypatch.setattr(shadow_tree, "ORPHAN_AFTER_S", 0.0)
    mine = ShadowTree.create()
    assert not orphan.exists() and not orphan.with_name(orphan.name + ".lock").exists()
    assert live.root.is_dir() and mine.root.is_dir()
    live.close()
    mine.close()
    assert list(state.iterdir()) == []
