"""Where the demo's fixtures are and the fresh git copy of the example project it runs in."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from opik_connect.demo.scenario import DemoError
from opik_connect.git_runner import GitError, run

FIXTURES_ENV = "OPIK_CONNECT_FIXTURES"
STATE_ENV = "OPIK_CONNECT_STATE_DIR"
SKIPPED_NAMES = {
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
}
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".egg-info")
DEMO_IDENTITY = ("opik-connect demo", "demo@opik-connect.invalid")


def fixtures_dir() -> Path:
    """fixtures/ of the source checkout (the README installs editable), or OPIK_CONNECT_FIXTURES."""
    override = os.environ.get(FIXTURES_ENV)
    path = Path(override) if override else Path(__file__).resolve().parents[3] / "fixtures"
    if not (path / "example_project").is_dir() or not (path / "demo").is_dir():
        raise DemoError(
            f"the demo's fixtures are not at {path}: run it from a source checkout "
            f"(pip install -e .) or set {FIXTURES_ENV} to its fixtures/ directory"
        )
    return path


@dataclass(frozen=True)
class DemoDirs:
    base: Path
    project: Path
    state: Path


def demo_dirs(keep: Path | None) -> DemoDirs:
    """--keep DIR (new or empty), else a fresh temp dir; both are left behind for review."""
    if keep is None:
        base = Path(tempfile.mkdtemp(prefix="opik-connect-demo-"))
    else:
        base = keep.expanduser().resolve()
        try:
            if base.exists() and (not base.is_dir() or any(base.iterdir())):
                raise DemoError(f"--keep {base}: choose a new or empty directory")
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DemoError(f"--keep {base}: {exc.strerror or exc}") from None
    return DemoDirs(base=base, project=base / "project", state=base / "state")


def _tracked_files(source: Path) -> list[Path]:
    """The example's files as git would track them: git's own listing, else the same skip rules."""
    try:
        listed = run(
            source, "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "."
        )
    except GitError:
        listed = None
    if listed is not None and listed.out:
        return [source / name for name in listed.out.decode().split("\0") if name]
    return [
        path
        for path in sorted(source.rglob("*"))
        if path.is_file()
        and not any(part in SKIPPED_NAMES for part in path.relative_to(source).parts)
        and not path.name.endswith(SKIPPED_SUFFIXES)
    ]


def copy_example(source: Path, dest: Path) -> int:
    """Copy the example project's tracked files into `dest`; returns how many."""
    files = [path for path in _tracked_files(source) if path.is_file()]
    for path in files:
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return len(files)


def init_repo(project: Path) -> str:
    """`git init`, a local demo identity, and the first commit; returns HEAD."""
    name, email = DEMO_IDENTITY
    run(project, "init", "-q", "-b", "main")
    run(project, "config", "user.name", name)
    run(project, "config", "user.email", email)
    run(project, "config", "commit.gpgsign", "false")
    run(project, "add", "-A")
    run(project, "commit", "-q", "-m", "Trailhead support agent (opik-connect example)")
    return run(project, "rev-parse", "HEAD").text
