"""The daemon dials a team platform without importing httpx, Anthropic or Ollie's loop."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "httpx",
    "anthropic",
    "opik_connect.agent.ollie.loop",
    "opik_connect.agent.ollie.sessions",
    "opik_connect.agent.platform.http_api",
)


def test_the_start_path_leaves_the_heavy_modules_unloaded() -> None:
    # The modules `opik-connect --platform URL` imports before it dials (daemon_cli's callback),
    # and the parts it builds; the heavy ones load only when the `ollie>` prompt or a sink asks.
    probe = (
        "import sys\n"
        "from opik_connect.config import load_project_config\n"
        "from opik_connect.connect.daemon import Daemon\n"
        "from opik_connect.connect.fixes.daemon_wiring import fix_parts\n"
        "from opik_connect.connect.websocket_client import LinkError\n"
        "from opik_connect.git_runner import find_git_root\n"
        "fix_parts(auto_approve=False).parts\n"
        f"print([m for m in sys.modules if m in {HEAVY!r}])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
