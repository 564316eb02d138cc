"""Replica benchmark (not part of the test command): `python bench/replicas.py [--daemons 500]`.

Two platform replicas share one PostgreSQL (a real server: --dsn, or one started like the tests
start theirs). Replica A runs in this process, replica B in a child process, and N simulated
daemons in another child: lightweight websocket clients that speak the real handshake and signed
frames and answer ReadFile from memory, half linked to A and half to B. From A it reports:
- how many daemons both replicas hold (A's view, through the shared presence table);
- ReadFile p50/p99 to daemons on A (local) and on B (through PostgreSQL NOTIFY), one at a time
  and 16 at a time;
- memory per connected daemon on each replica (RSS growth while the daemons connect).
Loopback only, bounded by --daemons and --commands. The load average is printed with the figures:
the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

from websockets.asyncio.client import connect

from opik_connect.agent.platform.replica_router import ReplicaRouter
from opik_connect.agent.platform.server import Platform
from opik_connect.agent.platform.services import PlatformServices
from opik_connect.link.auth import (
    FrameSigner,
    PairingRecord,
    connection_id,
    new_activation_key,
    new_nonce,
    sign_hello,
)
from opik_connect.link.frames import decode_frame
from opik_connect.protocol import (
    MAX_FRAME_BYTES,
    CommandResult,
    Hello,
    ReadFileArgs,
    ReadFileResult,
    RootSummary,
    Welcome,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from postgres_kit import PostgresServer, start_any_server

CONTENT = "".join(f"line {n}: some source text of a typical width\n" for n in range(40))
ROOT = RootSummary(root="/bench", visible_files=100, branch="main", head=None)
HANDSHAKES_AT_ONCE = 32


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def start_replica(dsn: str) -> tuple[Platform, PlatformServices]:
    platform = Platform()
    services = PlatformServices(store=dsn)
    await services.setup(platform)
    await platform.start()
    return platform, services


async def serve_replica(dsn: str) -> None:
    """Child mode: replica B, until killed."""
    platform, services = await start_replica(dsn)
    assert services.router is not None
    print(f"READY {platform.url} {services.router.replica_id}", flush=True)
    await asyncio.Event().wait()


async def simulated_daemon(url: str, record: PairingRecord, gate: asyncio.Semaphore) -> None:
    """The real handshake and signed frames; ReadFile answered from memory."""
    async with gate:
        ws = await connect(url, max_size=MAX_FRAME_BYTES, compression=None)
        nonce = new_nonce()
        hello = Hello(
            runner_id=record.runner_id, runner_name=record.runner_name, project="bench",
            root=ROOT, nonce=nonce,
        )  # fmt: skip
        key = record.link_key()
        await ws.send(
            sign_hello(key, nonce, uuid.uuid4().hex, hello.model_dump()).model_dump_json()
        )
        reply = decode_frame(await ws.recv())
        signer = FrameSigner(key, connection_id(nonce, Welcome.model_validate(reply.payload).nonce))
        signer.verify(reply)
    result = ReadFileResult(content=CONTENT, total_lines=40, truncated=False)
    answer = CommandResult(ok=True, result=result.model_dump()).model_dump(mode="json")
    async for message in ws:
        frame = signer.open(message)
        if frame.kind == "command" and frame.type == "ReadFile":
            await ws.send(signer.seal_text("result", "ReadFile", frame.id, answer))


async def swarm(plan: list[dict]) -> None:
    """Child mode: every simulated daemon of the plan, until killed."""
    gate = asyncio.Semaphore(HANDSHAKES_AT_ONCE)
    tasks = [
        asyncio.create_task(simulated_daemon(item["url"], PairingRecord(**item["record"]), gate))
        for item in plan
    ]
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        task.result()


async def child(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        *args,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


async def wait_connected(router: ReplicaRouter, n: int, within: float) -> int:
    deadline = time.monotonic() + within
    connected = 0
    while time.monotonic() < deadline:
        connected = sum(1 for info in router.runners() if info.connected)
        if connected >= n:
            break
        await asyncio.sleep(0.2)
    return connected


async def latencies(router: ReplicaRouter, ids: list[str], n: int, at_once: int) -> list[float]:
    samples: list[float] = []
    args = ReadFileArgs(path="src/app.py")

    async def one() -> None:
        runner = router.runner(random.choice(ids))
        start = time.perf_counter()
        result = await runner.read_file(args)
        samples.append(time.perf_counter() - start)
        assert result.total_lines == 40

    for _ in range(n // at_once):
        await asyncio.gather(*(one() for _ in range(at_once)))
    return samples


def figure(name: str, samples: list[float]) -> str:
    p50, p99 = percentile(samples, 0.5) * 1000, percentile(samples, 0.99) * 1000
    return f"  {name:<34} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   (n={len(samples)})"


async def run(daemons: int, commands: int, dsn: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    os.environ.setdefault("OPIK_CONNECT_STATE_DIR", str(work / "a"))
    a, a_services = await start_replica(dsn)
    assert a_services.router is not None
    router = a_services.router
    b_proc = await child("--replica", dsn, env={"OPIK_CONNECT_STATE_DIR": str(work / "b")})
    assert b_proc.stdout is not None
    _, b_url, b_id = (await b_proc.stdout.readline()).decode().split()
    swarm_proc: asyncio.subprocess.Process | None = None
    try:
        plan, on_a, on_b = [], [], []
        for n in range(daemons):
            record = a.pre_pair(uuid.uuid4().hex, new_activation_key(), runner_name=f"sim-{n}")
            local = n % 2 == 0
            (on_a if local else on_b).append(record.runner_id)
            plan.append({"url": a.url if local else b_url, "record": record.model_dump()})
        await a.pairings.settled()
        (work / "plan.json").write_text(json.dumps(plan))
        await asyncio.sleep(1.0)  # let both replicas settle before the baseline
        before = {"A": rss_kib(os.getpid()), "B": rss_kib(b_proc.pid)}
        started = time.monotonic()
        swarm_proc = await child("--swarm", str(work / "plan.json"))
        connected = await wait_connected(router, daemons, within=120)
        connect_s = time.monotonic() - started
        await asyncio.sleep(1.0)
        after = {"A": rss_kib(os.getpid()), "B": rss_kib(b_proc.pid)}
        load_before = os.getloadavg()
        results = {}
        for at_once in (1, 16):
            results[("local", at_once)] = await latencies(router, on_a, commands, at_once)
            results[("remote", at_once)] = await latencies(router, on_b, commands, at_once)
        load_after = os.getloadavg()
    finally:
        for proc in (swarm_proc, b_proc):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
        await a.stop()
        await a_services.aclose()

    print(f"replicas: 2 (A here, B {b_id} in a child), daemons: {daemons}, cores: {os.cpu_count()}")
    print(f"connected: {connected}/{daemons} in {connect_s:.1f}s (A sees both replicas' daemons)")
    for at_once in (1, 16):
        print(f"ReadFile from A, {at_once} at a time:")
        print(figure("daemon on A (local)", results[("local", at_once)]))
        print(figure("daemon on B (remote, via NOTIFY)", results[("remote", at_once)]))
    half = daemons // 2
    for name in ("A", "B"):
        grown = after[name] - before[name]
        print(f"memory on replica {name}: +{grown / 1024:.1f} MiB for {half} daemons, "
              f"{grown / half:.1f} KiB per connected daemon")  # fmt: skip
    print(f"load average (1/5/15 min): before {load_before[0]:.2f}/{load_before[1]:.2f}/"
          f"{load_before[2]:.2f}, after {load_after[0]:.2f}/{load_after[1]:.2f}/"
          f"{load_after[2]:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--daemons", type=int, default=500)
    parser.add_argument("--commands", type=int, default=480, help="per case (a multiple of 16)")
    parser.add_argument("--dsn", help="a PostgreSQL URL; default: start a throwaway server")
    parser.add_argument("--replica", metavar="DSN", help=argparse.SUPPRESS)
    parser.add_argument("--swarm", metavar="PLAN", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replica:
        asyncio.run(serve_replica(args.replica))
    elif args.swarm:
        asyncio.run(swarm(json.loads(Path(args.swarm).read_text())))
    else:
        server: PostgresServer | None = None
        dsn = args.dsn
        if dsn is None:
            server = start_any_server()
            dsn = server.dsn(server.create_database())
        try:
            asyncio.run(run(args.daemons, args.commands, dsn))
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
