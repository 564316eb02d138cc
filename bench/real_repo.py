"""The issue-14 table on a real-sized repo (>= 40,000 files), each row against its limit, same run.

Run: .venv/bin/python bench/real_repo.py [--reps 7] [--sequential 200] [--quiet-load 1.0]
[--search-only] (start-up, SearchFiles, the sequential searches and RSS rows only)
[--reads-only] (start-up, ReadFile and --help rows only)
The repo is built once and cached (bench/real_repo_build.py). opik-connect is measured through a
daemon process (`opik-connect --platform ws://…`, platform in this process: platform → websocket
→ daemon → back) and in-process (the Sandbox called directly); Opik's own bridge handlers are an
extra column when the `opik` package is importable. Each block waits for a quiet machine first
(1-minute load average) and prints the load next to its figures. The start row is the median
of --reps daemon starts, each followed by a git listing, with opik_connect's bytecode compiled
first (as pip installs it). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from real_repo_build import DEFAULT_CACHE, ensure_repo

import opik_connect
from opik_connect.agent.platform.server import Platform, RunnerHandle
from opik_connect.config import ProjectConfig
from opik_connect.connect.daemon import stable_runner_id
from opik_connect.connect.sandbox.read_commands import Sandbox
from opik_connect.connect.sandbox.ripgrep import find_ripgrep
from opik_connect.connect.sandbox.secret_redaction import might_contain_secret
from opik_connect.link.auth import PairingStore, new_activation_key
from opik_connect.protocol import ListFilesArgs, ReadFileArgs, SearchFilesArgs

try:
    from opik.runner.bridge_handlers.list_files import ListFilesHandler
    from opik.runner.bridge_handlers.read_file import ReadFileHandler
    from opik.runner.bridge_handlers.search_files import SearchFilesHandler
except ImportError:
    ListFilesHandler = ReadFileHandler = SearchFilesHandler = None  # type: ignore[assignment,misc]

RARE = "enable_load_extension"
COMMON = "TimeoutError"
Timed = Callable[[], Awaitable[object]]
ECHO_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve
async def echo(ws):
    async for message in ws:
        await ws.send(message)
async def main():
    async with serve(echo, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()
asyncio.run(main())
"""


def quiet(max_load: float, max_wait_s: float) -> float:
    """Wait (up to max_wait_s) for the 1-minute load average to drop below max_load."""
    deadline = time.monotonic() + max_wait_s
    while os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        time.sleep(2)
    return os.getloadavg()[0]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 0.01 else f"{seconds * 1e3:.0f} ms"


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def interleaved(calls: dict[str, Timed | None], reps: int) -> dict[str, list[float]]:
    """One warm-up each, then `reps` rounds running every call once in turn."""
    live = {name: call for name, call in calls.items() if call is not None}
    for call in live.values():
        await call()
    samples: dict[str, list[float]] = {name: [] for name in live}
    for _ in range(reps):
        for name, call in live.items():
            started = time.perf_counter()
            await call()
            samples[name].append(time.perf_counter() - started)
    return samples


def row(label: str, load: float, found: dict[str, list[float]], stat=statistics.median) -> None:
    ours = stat(found["daemon"])
    limit = stat(found["limit"])
    cells = [f"daemon {ms(ours)}"]
    for name in ("in-process", "opik"):
        if name in found:
            cells.append(f"{name} {ms(stat(found[name]))}")
    cells.append(f"limit {ms(limit)}")
    print(f"| {label} | {' | '.join(cells)} | {ours / limit:.2f}× | load {load:.2f} |", flush=True)


async def run_cmd(*cmd: str, cwd: Path | None = None) -> None:
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    await proc.communicate()


def pick_4k_files(root: Path) -> tuple[str, str]:
    """A ~4 KiB .py file the secret pre-check passes, and one that trips it (`://`)."""
    clean = tripping = None
    for path in sorted((root / "stdlib").rglob("*.py")):
        if not 3900 <= path.stat().st_size <= 4300:
            continue
        text = path.read_text(errors="replace")
        if clean is None and not might_contain_secret(text):
            clean = path
        if tripping is None and "://" in text:
            tripping = path
        if clean and tripping:
            return str(clean.relative_to(root)), str(tripping.relative_to(root))
    raise SystemExit("no 4 KiB files found")


class DaemonProcess:
    """`opik-connect --platform URL` in a child process, paired ahead with this platform."""

    def __init__(self, root: Path, state: Path) -> None:
        self.root, self.state = root, state
        self.platform = Platform(host="127.0.0.1", port=0)
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> tuple[RunnerHandle, float]:
        await self.platform.start()
        runner_id = stable_runner_id(self.root)
        record = self.platform.pre_pair(runner_id, new_activation_key(), runner_name="bench")
        PairingStore(self.state / "pairings.json").put(f"{self.platform.url} {self.root}", record)
        exe = str(Path(sys.executable).parent / "opik-connect")
        started = time.perf_counter()
        self.proc = await asyncio.create_subprocess_exec(
            exe,
            "--platform",
            self.platform.url,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "OPIK_CONNECT_STATE_DIR": str(self.state)},
        )
        runner = await asyncio.wait_for(self.platform.wait_runner(runner_id), 60)
        return runner, time.perf_counter() - started

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
        await self.platform.stop()


async def echo_client(content: str) -> tuple[Timed, Callable[[int], Awaitable[float]], object]:
    """A websockets echo server in another process: one round trip, and `n` concurrent ones."""
    from websockets.asyncio.client import connect

    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ECHO_SERVER, stdout=subprocess.PIPE
    )
    assert server.stdout is not None
    port = int(await server.stdout.readline())
    wss = [
        await connect(f"ws://127.0.0.1:{port}", compression=None, ping_interval=None)
        for _ in range(8)
    ]

    async def once() -> None:
        await wss[0].send(content)
        await wss[0].recv()

    async def concurrent(n: int) -> float:
        """p99 of n round trips started together over a few connections (as a daemon would)."""
        lock = [asyncio.Lock() for _ in wss]

        async def one(i: int) -> float:
            started = time.perf_counter()
            async with lock[i % len(wss)]:
                await wss[i % len(wss)].send(content)
                await wss[i % len(wss)].recv()
            return time.perf_counter() - started

        return p99(list(await asyncio.gather(*(one(i) for i in range(n)))))

    return once, concurrent, server


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (clock ticks, 10 ms: time many calls)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cpu_per_call(call: Timed, pid: int, n: int) -> tuple[float, float]:
    """CPU per call, in µs, of process `pid` (the answering side) and of this one."""
    remote, local = cpu_seconds(pid), time.process_time()
    for _ in range(n):
        await call()
    return (cpu_seconds(pid) - remote) / n * 1e6, (time.process_time() - local) / n * 1e6


def process_times(cmd: list[str], reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def bench(opts: argparse.Namespace) -> None:
    root = ensure_repo(opts.cache)
    tracked = int((opts.cache / "repo.done").read_text())
    rg = find_ripgrep()
    assert rg is not None, "ripgrep not found"
    state = Path(tempfile.mkdtemp(prefix="opik-bench-state-"))
    os.environ["OPIK_CONNECT_STATE_DIR"] = str(state)
    have_opik = ReadFileHandler is not None
    print(
        f"repo {root}: {tracked} tracked files; Opik's handlers: {have_opik}; "
        f"{os.cpu_count()} cores",
        flush=True,
    )
    clean, tripping = pick_4k_files(root)
    # As pip leaves an installed package: its bytecode compiled (an editable install under
    # PYTHONDONTWRITEBYTECODE would otherwise compile ~100 modules at every start).
    compileall.compile_dir(Path(opik_connect.__file__).parent, quiet=1)
    load = quiet(opts.quiet_load, opts.quiet_wait)
    git_ls = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    starts, git_times = [], []
    daemon: DaemonProcess | None = None
    for _ in range(opts.reps):  # each start interleaved with a git listing; the last stays up
        if daemon is not None:
            await daemon.stop()
        daemon = DaemonProcess(root, state)
        runner, start_s = await daemon.start()
        starts.append(start_s)
        started = time.perf_counter()
        await run_cmd(*git_ls, cwd=root)
        git_times.append(time.perf_counter() - started)
    assert daemon is not None
    start_s, ls_s = statistics.median(starts), statistics.median(git_times)
    print(
        f"| daemon start to connected | {ms(start_s)} | limit git ls-files {ms(ls_s)} "
        f"| {start_s / ls_s:.1f}× | load {load:.2f} |",
        flush=True,
    )
    rss_start = daemon.rss_mb()
    # Once its watcher is up the daemon builds its search index (seconds of CPU here); a search
    # waits for a build. The first may build it before the watches are up, which then make it
    # stale (rebuilt at once); the second waits for that rebuild. None of it runs under the
    # timed rows.
    for _ in range(2):
        await runner.search_files(SearchFilesArgs(pattern=RARE))
    sandbox = await Sandbox.open(root, ProjectConfig())
    opik_search = SearchFilesHandler(root) if have_opik else None
    opik_list = ListFilesHandler(root) if have_opik else None
    opik_read = ReadFileHandler(root) if have_opik else None
    try:
        searches = (("SearchFiles rare", RARE), ("SearchFiles common", COMMON))
        for label, pattern in () if opts.reads_only else searches:
            args = SearchFilesArgs(pattern=pattern)
            load = quiet(opts.quiet_load, opts.quiet_wait)
            found = await interleaved(
                {
                    "daemon": lambda a=args: runner.search_files(a),
                    "in-process": lambda a=args: sandbox.search_files(a),
                    "opik": (
                        lambda p=pattern: asyncio.to_thread(opik_search.execute, {"pattern": p}, 30)
                    )
                    if opik_search
                    else None,
                    "limit": lambda p=pattern: run_cmd(rg, p, ".", cwd=root),
                },
                opts.reps,
            )
            result = await runner.search_files(args)
            row(
                f"{label} ({result.total_matches} hits, {len(result.matches)} returned)",
                load,
                found,
            )

        if not opts.search_only:
            listings = (
                ("ListFiles root", {}),
                ("ListFiles *.py depth 5", {"pattern": "*.py", "depth": 5}),
            )
            for label, wire in () if opts.reads_only else listings:
                args = ListFilesArgs(**wire)
                load = quiet(opts.quiet_load, opts.quiet_wait)
                found = await interleaved(
                    {
                        "daemon": lambda a=args: runner.list_files(a),
                        "in-process": lambda a=args: sandbox.list_files(a),
                        "opik": (lambda w=wire: asyncio.to_thread(opik_list.execute, w, 30))
                        if opik_list
                        else None,
                        "limit": lambda: run_cmd("git", "ls-files", cwd=root),
                    },
                    opts.reps,
                )
                result = await runner.list_files(args)
                row(f"{label} ({result.total} entries, {len(result.files)} returned)", load, found)

            reads = (("ReadFile 4 KiB", clean), ("ReadFile 4 KiB, trips pre-check", tripping))
            for label, path in reads:
                content = (root / path).read_text()
                echo, concurrent, server = await echo_client(content)
                read_args = ReadFileArgs(path=path)
                load = quiet(opts.quiet_load, opts.quiet_wait)
                found = await interleaved(
                    {
                        "daemon": lambda a=read_args: runner.read_file(a),
                        "in-process": lambda a=read_args: sandbox.read_file(a),
                        "opik": (
                            lambda p=path: asyncio.to_thread(opik_read.execute, {"path": p}, 30)
                        )
                        if opik_read
                        else None,
                        "limit": echo,
                    },
                    opts.reps * 30,
                )
                row(f"{label} ({path}), p50", load, found)
                if path == clean:
                    load = quiet(opts.quiet_load, opts.quiet_wait)
                    calls = opts.reps * 200
                    daemon_cpu = await cpu_per_call(
                        lambda a=read_args: runner.read_file(a), daemon.pid, calls
                    )
                    echo_cpu = await cpu_per_call(echo, server.pid, calls)  # type: ignore[attr-defined]
                    print(
                        f"| CPU per ReadFile (where the p50 goes) | daemon {daemon_cpu[0]:.0f} µs"
                        f" + platform {daemon_cpu[1]:.0f} µs | echo server {echo_cpu[0]:.0f} µs"
                        f" + client {echo_cpu[1]:.0f} µs | "
                        f"{sum(daemon_cpu) / sum(echo_cpu):.2f}× | load {load:.2f} |",
                        flush=True,
                    )
                if path == tripping:
                    load = quiet(opts.quiet_load, opts.quiet_wait)
                    ours, base = [], []
                    for _ in range(opts.reps):
                        started = time.perf_counter()

                        async def one(a: ReadFileArgs = read_args, t0: float = started) -> float:
                            await runner.read_file(a)
                            return time.perf_counter() - t0

                        ours.append(p99(list(await asyncio.gather(*(one() for _ in range(200))))))
                        base.append(await concurrent(200))
                    row(
                        "200 concurrent ReadFiles of it, p99", load, {"daemon": ours, "limit": base}
                    )
                server.terminate()  # type: ignore[attr-defined]
                await server.wait()  # type: ignore[attr-defined]

            load = quiet(opts.quiet_load, opts.quiet_wait)
            exe = str(Path(sys.executable).parent / "opik-connect")
            help_s = process_times([exe, "--help"], opts.reps)
            opik_exe = Path(sys.executable).parent / "opik"
            opik_help = (
                f", opik --help {ms(process_times([str(opik_exe), '--help'], 3))}"
                if opik_exe.exists()
                else ""
            )
            pass_s = process_times([sys.executable, "-c", "pass"], opts.reps)
            print(
                f"| opik-connect --help | {ms(help_s)}{opik_help} | python -c pass {ms(pass_s)} "
                f"| target < 300 ms | load {load:.2f} |",
                flush=True,
            )

        if opts.sequential and not opts.reads_only:
            load = quiet(opts.quiet_load, opts.quiet_wait)
            times = []
            for i in range(opts.sequential):
                pattern = COMMON if i % 2 else RARE
                started = time.perf_counter()
                await runner.search_files(SearchFilesArgs(pattern=pattern))
                times.append(time.perf_counter() - started)
            print(
                f"| {opts.sequential} sequential searches | median {ms(statistics.median(times))}"
                f" / max {ms(max(times))} | | | load {load:.2f} |",
                flush=True,
            )
        print(
            f"| RSS after start / after the searches | {rss_start:.0f} MB / "
            f"{daemon.rss_mb():.0f} MB | | target < 80 MB | |",
            flush=True,
        )
    finally:
        await daemon.stop()
        shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--quiet-load", type=float, default=1.0)
    parser.add_argument("--quiet-wait", type=float, default=120.0)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument(
        "--search-only", action="store_true", help="only start-up, SearchFiles and RSS rows"
    )
    parser.add_argument(
        "--reads-only", action="store_true", help="only start-up, ReadFile and --help rows"
    )
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
