"""`opik-connect` (no sub-command) runs the daemon in the current project; `stop` ends it.

Errors follow the CLI's convention (cli_errors.py); `--debug` shows the traceback instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from opik_connect.cli_errors import environment_error, failed, usage_error

if TYPE_CHECKING:
    from opik_connect.config import ProjectConfig
    from opik_connect.connect.daemon import Daemon
    from opik_connect.connect.websocket_client import LinkState
    from opik_connect.git_runner import StartedGit

PID_FILE = "daemon.pid"
PLATFORM_ENV = "OPIK_CONNECT_PLATFORM"
"""The environment variable naming a team platform's URL (else the daemon embeds one)."""
DEFAULT_MODEL_ENDPOINT = "https://api.anthropic.com"
"""Where the Anthropic SDK sends Ollie's requests when ANTHROPIC_BASE_URL is not set."""

STATE_STYLE = {
    "connected": "green",
    "pairing": "yellow",
    "reconnecting": "yellow",
    "connecting": "cyan",
    "stopped": "dim",
}
"""Keyed by LinkState's value: the link's module is imported only when the daemon runs."""

console = Console(highlight=False)


def pid_file(root: Path) -> Path:
    from opik_connect.config import project_state_dir

    return project_state_dir(root) / PID_FILE


def running_pid(root: Path) -> int | None:
    """The pid in the project's pid file while a daemon holds the file's lock.

    The running daemon holds an exclusive flock on the pid file; the kernel drops it when that
    process dies however it dies. A pid file nobody locks is stale (a kill -9, perhaps with its
    pid since reused by an unrelated process), so no pid is returned and nothing is signalled.
    """
    try:
        fd = os.open(pid_file(root), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            with os.fdopen(os.dup(fd), encoding="utf-8") as handle:
                text = handle.read().strip()
            return int(text) if text.isdigit() else None
        return None
    finally:
        os.close(fd)


def write_pid_file(root: Path) -> tuple[Path, int]:
    """Claims the project: the pid file, locked for as long as the returned fd stays open."""
    path = pid_file(root)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise usage_error(f"a daemon already serves {root}; `opik-connect stop`") from None
    os.fchmod(fd, 0o600)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return path, fd


def run_daemon(
    ctx: typer.Context,
    platform: str | None = typer.Option(
        None, "--platform", help=f"ws(s):// URL of a team platform (env {PLATFORM_ENV})."
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="Allow ws:// to non-loopback hosts and unverified wss://."
    ),
    name: str | None = typer.Option(None, "--name", help="Runner name shown on the platform."),
    auto_approve: bool = typer.Option(
        False,
        "--auto-approve",
        help="Approve every proposal without asking (scripts and CI only; never the default).",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
) -> None:
    """Serve this project to the platform (embedded on loopback unless one is configured)."""
    ctx.obj = {"debug": debug}
    if ctx.invoked_subcommand is not None:
        return
    from opik_connect.connect.sandbox.repo_files import RepoFiles
    from opik_connect.git_runner import find_git_root

    root = find_git_root(Path.cwd())
    # git lists the files on the other core while this one imports the daemon's modules.
    first_listing = RepoFiles.start_listing(root)
    try:
        _run(root, first_listing, platform, insecure, name, auto_approve, debug)
    finally:
        first_listing.close()


def _run(
    root: Path,
    first_listing: StartedGit,
    platform: str | None,
    insecure: bool,
    name: str | None,
    auto_approve: bool,
    debug: bool,
) -> None:
    # Imported here, not at the top: `--help` and every sub-command pass through the callback.
    from opik_connect.config import load_project_config
    from opik_connect.connect.daemon import Daemon
    from opik_connect.connect.fixes.daemon_wiring import fix_parts
    from opik_connect.connect.platform_url import LinkError

    config = load_project_config(root)
    url = platform or os.environ.get(PLATFORM_ENV) or config.platform
    setup_platform = None
    if url is None:  # the embedded platform and Ollie's loop: not loaded to dial a team one
        from opik_connect.agent.platform.cli import setup_platform
    pid = running_pid(root)
    if pid is not None:
        raise usage_error(f"a daemon already serves {root} (pid {pid}); `opik-connect stop`")
    try:
        daemon = Daemon(
            root,
            config,
            platform_url=url,
            insecure=insecure,
            runner_name=name,
            on_state=_show_state,
            on_pair_code=_show_code,
            parts=[
                _announce,
                *fix_parts(auto_approve=auto_approve, console=console).parts,
            ],
            platform_setup=setup_platform,
            first_listing=first_listing,
        )
        asyncio.run(_serve(daemon))
    except (LinkError, OSError) as exc:
        raise environment_error(exc, debug) from None


_last_state: tuple[LinkState, str] | None = None


def _show_state(state: LinkState, detail: str) -> None:
    global _last_state
    if (state, detail) == _last_state or state.value == "pairing":
        return
    _last_state = (state, detail)
    style = STATE_STYLE.get(state.value, "white")
    suffix = f" [dim]({escape(detail)})[/dim]" if detail else ""
    console.print(f"[{style}]●[/{style}] {state.value}{suffix}")


def _show_code(code: str, expires_at: float) -> None:
    minutes = max(0, round((expires_at - time.time()) / 60))
    console.print(
        f"[yellow]●[/yellow] pairing: code [bold]{code}[/bold] (valid {minutes} min). "
        f"Confirm it on the platform: [bold]opik-connect platform pair {code}[/bold]"
    )


async def _announce(daemon: Daemon) -> None:
    """A part, so the banner is printed before the link and the `ollie>` prompt start."""
    from opik_connect.connect.suites.agent_python import agent_line

    root = daemon.sandbox.root if daemon.sandbox is not None else daemon.root
    summary, agent = await asyncio.gather(daemon.root_summary(), agent_line(root))
    embedded = daemon.platform is not None
    where = f"{daemon.url} (embedded)" if embedded else daemon.url
    project = escape(daemon.identity.project)
    console.print(f"[bold]opik-connect[/bold] serving project [bold]{project}")
    console.print(f"  root      {escape(str(summary.root))}")
    branch = escape(str(summary.branch))
    console.print(f"  files     {summary.visible_files} visible (branch {branch})")
    console.print(f"  platform  {escape(where)}")
    console.print(f"  ollie     {escape(ollie_setup(daemon.config, os.environ, embedded))}")
    console.print(f"  agent     {escape(agent)}")
    console.print("  stop with Ctrl-C or `opik-connect stop`")


def ollie_setup(config: ProjectConfig, env: Mapping[str, str], embedded: bool) -> str:
    """Ollie's model, endpoint and whether a key is set (never the key), so a user learns a
    missing key at start rather than at the first `ask`. A remote platform runs its own Ollie."""
    if not embedded:
        return "runs on the platform, with the platform's model and key"
    from opik_connect.agent.ollie.sessions import API_KEY_ENV, BASE_URL_ENV

    base_url = env.get(BASE_URL_ENV, "").strip()
    endpoint = f"{base_url} ({BASE_URL_ENV})" if base_url else f"{DEFAULT_MODEL_ENDPOINT} (default)"
    key = (
        f"key set ({API_KEY_ENV})"
        if env.get(API_KEY_ENV, "").strip()
        else f"NO key: set {API_KEY_ENV} and restart to ask Ollie"
    )
    return f"model {config.model} at {endpoint}, {key}"


async def _serve(daemon: Daemon) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pid_path, pid_fd = write_pid_file(daemon.root)
    try:
        await daemon.start()
        waiter = asyncio.create_task(stop.wait())
        link_done = asyncio.create_task(daemon.wait_link_ended())
        done, _ = await asyncio.wait({waiter, link_done}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if link_done in done:
            link_done.result()  # the link only ends by itself on an error retrying cannot fix
        link_done.cancel()
    finally:
        await daemon.stop()
        with contextlib.suppress(FileNotFoundError):
            if os.stat(pid_path).st_ino == os.fstat(pid_fd).st_ino:
                pid_path.unlink()
        os.close(pid_fd)


def stop_daemon(
    ctx: typer.Context,
    wait_s: float = typer.Option(10.0, "--wait", help="Seconds to wait for it to exit."),
) -> None:
    """Stop the daemon serving the current project."""
    from opik_connect.git_runner import find_git_root

    debug = bool((ctx.obj or {}).get("debug"))
    root = find_git_root(Path.cwd())
    pid = running_pid(root)
    if pid is None:
        raise usage_error(f"no daemon is running for {root}")
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                console.print(f"stopped the daemon for {escape(str(root))} (pid {pid})")
                return
            time.sleep(0.05)
    except OSError as exc:
        raise environment_error(exc, debug) from None
    raise failed(f"the daemon (pid {pid}) did not exit within {wait_s:g}s")


def register(app: typer.Typer) -> None:
    """Hook the daemon into the root command: `opik-connect` runs it, `stop` ends it."""
    app.callback(invoke_without_command=True)(run_daemon)
    app.command("stop")(stop_daemon)
