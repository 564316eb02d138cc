"""SearchFiles on a generated 20,000-file repo against raw `rg` on the same pattern, same run.

Run: /tmp/venv/bin/python bench/search.py [--files 20000] [--runs 15]
Prints the median wall time of each and their ratio (target: SearchFiles <= 1.2x raw rg).
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from opik_connect.config import ProjectConfig
from opik_connect.connect.sandbox.read_commands import Sandbox
from opik_connect.protocol import SearchFilesArgs

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "trace",
    "span",
    "token",
    "handler",
    "request",
    "response",
    "error",
    "value",
]


def generate_repo(root: Path, files: int) -> None:
    """`files` committed Python files in nested packages, plus an ignored node_modules tree."""
    rng = random.Random(7)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    for i in range(files):
        folder = root / f"pkg{i % 50}" / f"mod{i % 400}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = [
            f"def {rng.choice(WORDS)}_{j}(x):  # {rng.choice(WORDS)} {rng.choice(WORDS)}\n"
            for j in range(60)
        ]
        if i % 97 == 0:
            lines.append("    raise TimeoutError('needle in the haystack')\n")
        (folder / f"file_{i}.py").write_text("".join(lines))
    ignored = root / "node_modules" / "dep"
    ignored.mkdir(parents=True)
    for i in range(500):
        (ignored / f"lib_{i}.js").write_text("needle in an ignored dependency\n" * 20)
    (root / ".gitignore").write_text("node_modules/\n")
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.email=b@x", "-c", "user.name=b", "commit", "-qm", "g"],
        check=True,
    )


async def time_search(sandbox: Sandbox, pattern: str) -> tuple[float, int]:
    started = time.perf_counter()
    result = await sandbox.search_files(SearchFilesArgs(pattern=pattern))
    return time.perf_counter() - started, result.total_matches


async def time_raw_rg(rg: str, root: Path, pattern: str) -> tuple[float, int]:
    """Plain `rg PATTERN .` with its output captured, as a user would run it."""
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        rg,
        pattern,
        ".",
        cwd=root,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return time.perf_counter() - started, out.count(b"\n")


async def bench(files: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        started = time.perf_counter()
        generate_repo(root, files)
        print(f"generated {files} files in {time.perf_counter() - started:.1f}s at {root}")
        sandbox = await Sandbox.open(root, ProjectConfig())
        assert sandbox.rg is not None, "ripgrep not found"
        for pattern in ("needle", r"def (alpha|omega)_1\d\("):
            ours_times, raw_times = [], []
            await time_search(sandbox, pattern)
            await time_raw_rg(sandbox.rg, root, pattern)
            for _ in range(runs):
                ours, ours_total = await time_search(sandbox, pattern)
                raw, raw_total = await time_raw_rg(sandbox.rg, root, pattern)
                ours_times.append(ours)
                raw_times.append(raw)
            ours_med = statistics.median(ours_times)
            raw_med = statistics.median(raw_times)
            print(
                f"pattern {pattern!r}: SearchFiles {ours_med * 1000:.1f} ms "
                f"({ours_total} matches), raw rg {raw_med * 1000:.1f} ms ({raw_total} lines); "
                f"ratio {ours_med / raw_med:.2f}x (target <= 1.2x)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    asyncio.run(bench(args.files, args.runs))


if __name__ == "__main__":
    main()
