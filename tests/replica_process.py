"""One platform replica in a process of its own, for the tests that kill it (SIGKILL).

    python tests/replica_process.py DSN

Prints `READY <url> <replica id> <operator token>` once it listens, then serves until killed.
"""

from __future__ import annotations

import asyncio
import sys

from opik_connect.agent.platform.server import Platform
from opik_connect.agent.platform.services import PlatformServices


async def main(dsn: str) -> None:
    platform = Platform()
    services = PlatformServices(store=dsn)
    await services.setup(platform)
    await platform.start()
    assert services.router is not None
    ready = f"READY {platform.url} {services.router.replica_id} {platform.operator_token}"
    print(ready, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
