"""Bridge benchmarks (not part of the test command): `python bench/bridge.py`.

Each section measures one bridge path against the bare baseline it is built on, in the same run,
and prints the ratio with its target:
- ReadFile of a 4 KiB file through the real link (embedded platform, signed frames, the sandbox)
  against a bare websockets echo of the same payload. Target: <= 1.5x. A second line shows the
  link alone (an in-memory handler), to tell the link's share from the sandbox's.
- SearchFiles on a generated 20,000-file repo through the real link against raw `rg`.
  Target: <= 1.2x.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from opik_connect.connect.sandbox.ripgrep import find_ripgrep
from opik_connect.connect.websocket_client import link_compression
from opik_connect.protocol import ReadFileArgs, ReadFileResult, SearchFilesArgs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from embedded_pair import embedded_pair


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(call: Callable[[], Awaitable[object]], n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        await call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return samples


def report(name: str, ours: list[float], base: list[float], target: float) -> bool:
    ok = True
    for label, q in (("p50", 0.5), ("p99", 0.99)):
        mine, theirs = percentile(ours, q), percentile(base, q)
        ratio = mine / theirs
        ok &= ratio <= target
        print(
            f"{name:<28} {label}: {mine * 1e3:8.3f} ms vs baseline {theirs * 1e3:8.3f} ms"
            f"  ratio {ratio:5.2f}x (target <= {target}x)"
        )
    return ok


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=b@b", "-c", "user.name=bench", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


async def bare_echo(content: str, n: int) -> list[float]:
    """Round trips of `content` through a bare websockets echo, with the link's settings."""

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"ws://127.0.0.1:{port}"
        # The same websocket settings as the link: the platform serves with the defaults, the
        # daemon dials with link_compression(url) (no permessage-deflate on loopback).
        compression = link_compression(url)
        async with connect(url, compression=compression) as ws:

            async def bare() -> None:
                await ws.send(content)
                await ws.recv()

            samples = await timed(bare, n, n // 10)
    print(
        f"bare echo (compression {compression}, same as the link):"
        f" p50 {percentile(samples, 0.5) * 1e3:.3f} ms"
    )
    return samples


async def bench_read_file(n: int) -> bool:
    """ReadFile 4 KiB: the link's whole round trip vs a bare websockets echo of the content."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        line = "x = 'opik connect benchmark line of text'  # padding\n"
        content = (line * (4096 // len(line) + 1))[:4096]
        (root / "four_k.py").write_text(content)
        git(root, "init", "-q")
        git(root, "add", ".")
        git(root, "commit", "-qm", "bench")

        first = await bare_echo(content, n)
        async with embedded_pair(root) as (_, runner, _daemon):
            args = ReadFileArgs(path="four_k.py")

            async def link() -> None:
                result = await runner.read_file(args)
                assert len(result.content) == 4096

            ours = await timed(link, n, n // 10)
        # The echo is timed again after the link: a fresh process sometimes runs its first
        # loopback round trips slower, and a slow baseline would flatter the ratio.
        base = min(first, await bare_echo(content, n), key=lambda samples: percentile(samples, 0.5))
        ok = report("ReadFile 4 KiB round trip", ours, base, 1.5)

        # The link alone (signing, framing, acks, dispatch): a handler that reads nothing.
        canned = ReadFileResult(content=content, total_lines=content.count("\n"), truncated=False)

        async def in_memory(_args: ReadFileArgs) -> ReadFileResult:
            return canned

        async with embedded_pair(root, handlers={"ReadFile": in_memory}) as (_, runner, _d):

            async def link_only() -> None:
                await runner.read_file(args)

            ours = await timed(link_only, n, n // 10)
        report("  of which the link alone", ours, base, 1.5)
        return ok


async def bench_search_files(n: int, files: int) -> bool:
    """SearchFiles through the link vs `rg` on the same pattern and repo."""
    rg = find_ripgrep()
    if rg is None:
        print("SearchFiles: skipped, no rg found")
        return True
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        for i in range(files):
            folder = root / f"pkg{i % 200:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            body = f"def handler_{i}(request):\n    return process(request, limit={i})\n"
            if i % 997 == 0:
                body += "    # NEEDLE_MARKER here\n"
            (folder / f"mod_{i}.py").write_text(body)
        git(root, "init", "-q")
        git(root, "add", ".")
        git(root, "commit", "-qm", "bench")
        pattern = "NEEDLE_MARKER"

        async def raw_rg() -> None:
            proc = await asyncio.create_subprocess_exec(
                rg, "--json", "-C", "2", pattern, ".", cwd=root, stdout=asyncio.subprocess.PIPE
            )
            await proc.communicate()

        base = await timed(raw_rg, n, 2)
        async with embedded_pair(root) as (_, runner, _daemon):
            args = SearchFilesArgs(pattern=pattern)

            async def link() -> None:
                result = await runner.search_files(args)
                assert result.total_matches > 0

            ours = await timed(link, n, 2)
        return report(f"SearchFiles {files} files", ours, base, 1.2)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="ReadFile round trips.")
    parser.add_argument("--search-n", type=int, default=30, help="SearchFiles runs.")
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--only", choices=["read", "search"], default=None)
    opts = parser.parse_args()
    os.environ.setdefault("OPIK_CONNECT_STATE_DIR", tempfile.mkdtemp(prefix="opik-bench-"))
    ok = True
    if opts.only in (None, "read"):
        ok &= await bench_read_file(opts.n)
    if opts.only in (None, "search"):
        ok &= await bench_search_files(opts.search_n, opts.files)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
