"""Dialing a team platform imports no httpx, Anthropic, Ollie's loop, GitPython, pygments, yaml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from proposal_fixtures import make_repo

HEAVY = (
    "httpx",
    "anthropic",
    "opik_connect.agent.ollie.loop",
    "opik_connect.agent.ollie.sessions",
    "opik_connect.agent.platform.http_api",
    "git",
    "rich.markdown",
    "pygments",
    "yaml",
)


def test_the_start_path_leaves_the_heavy_modules_unloaded(tmp_path: Path) -> None:
    # The modules `opik-connect --platform URL` imports before it dials (daemon_cli's callback),
    # the parts it builds, the banner's Ollie line and the `ollie>` prompt's asker (made just
    # after it connects); the heavy ones load only when a question or a sink asks.
    probe = (
        "import sys\nfrom pathlib import Path\n"
        "from opik_connect.config import load_project_config\n"
        "from opik_connect.connect.daemon import Daemon\n"
        "from opik_connect.connect.fixes.daemon_wiring import fix_parts\n"
        "from opik_connect.connect.websocket_client import DaemonLink\n"
        "from opik_connect.git_runner import find_git_root\n"
        "from opik_connect.connect.daemon_cli import ollie_setup\n"
        "from opik_connect.connect.terminal.ollie_prompt import daemon_asker\n"
        "fix_parts(auto_approve=False).parts\n"
        "ollie_setup(load_project_config(find_git_root(Path.cwd())), {}, embedded=False)\n"
        "daemon = Daemon(find_git_root(Path.cwd()), load_project_config(Path.cwd()), "
        "platform_url='ws://127.0.0.1:9')\n"
        "daemon_asker(daemon)\n"
        f"print([m for m in sys.modules if m in {HEAVY!r}])\n"
    )
    repo = make_repo(tmp_path / "repo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=repo, env=env
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
