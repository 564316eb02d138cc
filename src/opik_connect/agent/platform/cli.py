"""`opik-connect platform`: run the platform server standalone, and confirm pairings against it.

Pairing is confirmed out of band: the daemon shows a code; the operator, on the platform's
machine, runs `opik-connect platform pair CODE`. That command proves it is the operator with the
platform's own token, read from the 0600 run file the server writes in the user's state dir.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from opik_connect.agent.platform.run_file import SERVER_RUN_FILE_NAME, PlatformRunFile
from opik_connect.agent.platform.server import Platform, RunnerInfo
from opik_connect.agent.platform.services import platform_services_part
from opik_connect.cli_errors import ConventionGroup, environment_error, failed, usage_error
from opik_connect.config import user_state_dir
from opik_connect.link.auth import PairingStore
from opik_connect.link.frames import decode_frame, encode_control
from opik_connect.private_files import write_private_json
from opik_connect.protocol import (
    ConfirmPairing,
    FrameError,
    PairingConfirmed,
    PairRequest,
)

PLATFORM_PARTS: tuple[Callable[[Platform], Awaitable[None]], ...] = (platform_services_part,)
"""Each mounts one feature on a platform (standalone or embedded)."""


async def setup_platform(platform: Platform) -> None:
    """Run every platform part; both the standalone and the embedded platform go through it."""
    for part in PLATFORM_PARTS:
        await part(platform)


platform_app = typer.Typer(
    cls=ConventionGroup,
    help="Run the platform server standalone and confirm daemon pairings.",
    invoke_without_command=True,
)
console = Console(highlight=False)


def _debug(ctx: typer.Context) -> bool:
    root = ctx.find_root()
    return bool((root.obj or {}).get("debug")) if root.obj else False


def server_run_file() -> Path:
    return user_state_dir() / SERVER_RUN_FILE_NAME


@platform_app.callback()
def serve_platform(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port (0 picks a free one)."),
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="PEM certificate: serve wss.")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="PEM private key for --tls-cert.")
    ] = None,
) -> None:
    """Listen for daemons until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    context = None
    if tls_cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as exc:
            key = f" / --tls-key {tls_key}" if tls_key else ""
            raise usage_error(f"cannot load --tls-cert {tls_cert}{key}: {exc}") from None
    try:
        asyncio.run(_serve(host, port, context))
    except (OSError, ssl.SSLError) as exc:
        raise environment_error(exc, _debug(ctx)) from None


def _announce_pair_request(request: PairRequest) -> None:
    console.print(
        "[yellow]●[/yellow] pairing request from runner "
        f"[bold]{escape(request.runner_name)}[/bold] "
        f"(project {escape(request.project)}). Confirm the code its terminal shows with: "
        "[bold]opik-connect platform pair CODE[/bold]"
    )


def _announce_runner(info: RunnerInfo) -> None:
    if info.connected:
        files = info.root.visible_files if info.root else 0
        console.print(
            f"[green]●[/green] runner [bold]{escape(info.name)}[/bold] connected "
            f"(project {escape(info.project)}, {files} files)"
        )
    else:
        console.print(f"[yellow]●[/yellow] runner [bold]{escape(info.name)}[/bold] disconnected")


async def _serve(host: str, port: int, context: ssl.SSLContext | None) -> None:
    state = user_state_dir() / "platform"
    platform = Platform(
        host=host,
        port=port,
        pairing_store=PairingStore(state / "runners.json"),
        on_pair_request=_announce_pair_request,
        on_runner_change=_announce_runner,
        ssl_context=context,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await setup_platform(platform)
    await platform.start()
    run_file = server_run_file()
    record = PlatformRunFile(
        url=platform.url, token=platform.operator_token, pid=os.getpid(), started_at=time.time()
    )
    write_private_json(run_file, record.model_dump())
    if context is None and host not in ("127.0.0.1", "::1", "localhost"):
        console.print("[yellow]warning:[/yellow] plain ws:// on a public interface; use --tls-cert")
    console.print(f"[green]●[/green] platform listening on [bold]{platform.url}[/bold]")
    try:
        await stop.wait()
    finally:
        run_file.unlink(missing_ok=True)
        await platform.stop()
        console.print("[dim]● stopped[/dim]")


@platform_app.command("pair")
def pair(
    ctx: typer.Context,
    code: str = typer.Argument(..., help="The code the daemon's terminal shows."),
) -> None:
    """Confirm a daemon's pairing code on the running platform."""
    try:
        confirmed = asyncio.run(confirm_on_running_platform(code))
    except (OSError, ConnectionClosed, TimeoutError) as exc:
        raise environment_error(exc, _debug(ctx)) from None
    console.print(
        f"[green]●[/green] paired runner [bold]{escape(confirmed.runner_name)}[/bold] "
        f"(project {escape(confirmed.project)}, id {escape(confirmed.runner_id)})"
    )


async def confirm_on_running_platform(code: str, run_file: Path | None = None) -> PairingConfirmed:
    """Send ConfirmPairing with the platform's token from its run file."""
    path = run_file or server_run_file()
    try:
        found = PlatformRunFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise usage_error(f"no running platform found ({path})") from exc
    return await confirm_pairing_remote(found.url, found.token, code)


async def confirm_pairing_remote(url: str, token: str, code: str) -> PairingConfirmed:
    confirm = ConfirmPairing(code=code, token=token)
    async with asyncio.timeout(10), connect(url) as ws:
        await ws.send(encode_control(uuid.uuid4().hex, confirm))
        reply = decode_frame(await ws.recv())
    if reply.type == "PairingConfirmed":
        return PairingConfirmed.model_validate(reply.payload)
    error = FrameError.model_validate(reply.payload).error
    raise failed(f"pairing refused: {error.code}: {error.message}")
