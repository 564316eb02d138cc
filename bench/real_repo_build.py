"""Build (once) and reuse the real-sized git repo bench/real_repo.py measures on.

The repo is this interpreter's standard library and site-packages plus the bench venv's
site-packages (and the system dist-packages when present), copied without __pycache__ or nested
.git folders and committed; it is cached under ~/.cache/opik-connect-bench so later runs reuse it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "opik-connect-bench"
MIN_FILES = 40_000


def _sources() -> list[tuple[str, Path]]:
    paths = sysconfig.get_paths()
    found = [("stdlib", Path(paths["stdlib"])), ("venv-site-packages", Path(paths["purelib"]))]
    system = Path("/usr/lib/python3/dist-packages")
    if system.is_dir():
        found.append(("dist-packages", system))
    return [(name, path) for name, path in found if path.is_dir()]


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=bench@b", "-c", "user.name=bench", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def ensure_repo(cache: Path = DEFAULT_CACHE) -> Path:
    """The cached repo, built first when missing or unfinished; refuses fewer than MIN_FILES."""
    root = cache / "repo"
    done = cache / "repo.done"
    if done.is_file() and (root / ".git").is_dir():
        return root
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", ".git", "*.pyc")
    for name, source in _sources():
        print(f"copying {source} -> {name}/", file=sys.stderr)
        # A venv's site-packages may sit inside the stdlib copy's tree or beside it: copy each.
        shutil.copytree(source, root / name, symlinks=True, ignore=ignore, dirs_exist_ok=True)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "real-sized bench repo")
    tracked = _git(root, "ls-files", "-z").count("\0")
    if tracked < MIN_FILES:
        raise SystemExit(f"only {tracked} files tracked; the bench needs >= {MIN_FILES}")
    done.write_text(f"{tracked}\n")
    return root


if __name__ == "__main__":
    print(ensure_repo())
