"""`opik-connect platform`: run the platform server standalone, and confirm pairings against it.

Pairing is confirmed out of band: the daemon shows a code; the operator, on the platform's
machine, runs `opik-connect platform pair CODE`. That command proves it is the operator with the
platform's own token, read from the 0600 run file the server writes in the user's state dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import ssl
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from opik_connect.agent.platform.client_address import trusted_set
from opik_connect.agent.platform.log_context import LogFormat, configure_logging
from opik_connect.agent.platform.run_file import SERVER_RUN_FILE_NAME, PlatformRunFile
from opik_connect.agent.platform.server import Platform, RunnerInfo
from opik_connect.agent.platform.services import (
    SINK_PORT_OVERRIDE,
    SINK_PUBLIC_PORT_OVERRIDE,
    STORE_OVERRIDE,
    platform_services_part,
)
from opik_connect.agent.platform.store_schema import StoreError
from opik_connect.cli_errors import ConventionGroup, environment_error, failed, usage_error
from opik_connect.config import user_state_dir
from opik_connect.link.auth import PairingStore
from opik_connect.link.frames import decode_frame, encode_control
from opik_connect.private_files import write_private_json
from opik_connect.protocol import (
    CLOSE_DRAINING,
    ConfirmPairing,
    FrameError,
    PairingConfirmed,
    PairRequest,
)

log = logging.getLogger(__name__)

TOKEN_ENV = "OPIK_CONNECT_PLATFORM_TOKEN"
"""The operator token, when several replicas must share one (else each start makes one up)."""
MIN_TOKEN_CHARS = 32

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
    log_format: Annotated[
        Literal["json", "text"] | None,
        typer.Option(
            "--log-format",
            help="json: one JSON object a line on stderr. Default: text on a terminal, else json.",
        ),
    ] = None,
    drain_timeout: Annotated[
        float,
        typer.Option(
            "--drain-timeout",
            min=0.0,
            help="On SIGTERM, seconds to let commands and sessions in flight finish.",
        ),
    ] = 30.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Also serve /metrics without a token on this port of --metrics-host.",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Interface for --metrics-port.")
    ] = "127.0.0.1",
    trusted_proxies: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            help="A reverse proxy's IP whose X-Forwarded-For names the daemon (repeatable).",
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="postgresql://... URL (replicas share it) or a SQLite file; default: the "
            "project's `store` setting, else a SQLite file in the state dir.",
        ),
    ] = None,
    sink_port: Annotated[
        int | None,
        typer.Option(
            "--sink-port",
            min=0,
            max=65535,
            help="The trace sink's port on --host (a proxy in front of it forwards this port); "
            "default: the project's `sink-port` setting, else a free one.",
        ),
    ] = None,
    sink_public_port: Annotated[
        int | None,
        typer.Option(
            "--sink-public-port",
            min=1,
            max=65535,
            help="The port daemons reach the sink on, when a proxy fronts it on another port; "
            "default: the project's `sink-public-port` setting, else the sink's own.",
        ),
    ] = None,
) -> None:
    """Listen for daemons until SIGTERM or Ctrl-C (which drain; a second one stops at once)."""
    if ctx.invoked_subcommand is not None:
        return
    token = os.environ.get(TOKEN_ENV) or None
    if token is not None and len(token.strip()) < MIN_TOKEN_CHARS:
        raise usage_error(
            f"{TOKEN_ENV} must be at least {MIN_TOKEN_CHARS} characters "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    try:
        proxies = trusted_set(trusted_proxies or ())
    except ValueError as exc:
        raise usage_error(f"--trusted-proxy: {exc}") from None
    chosen: LogFormat = log_format or ("text" if sys.stderr.isatty() else "json")
    configure_logging(chosen, debug=_debug(ctx))
    context = None
    if tls_cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as exc:
            key = f" / --tls-key {tls_key}" if tls_key else ""
            raise usage_error(f"cannot load --tls-cert {tls_cert}{key}: {exc}") from None
    try:
        asyncio.run(
            _serve(
                host,
                port,
                context,
                Announcer(json_logs=chosen == "json"),
                drain_timeout,
                (metrics_host, metrics_port) if metrics_port is not None else None,
                token.strip() if token else None,
                proxies,
                store,
                (sink_port, sink_public_port),
            )
        )
    except StoreError as exc:
        raise failed(f"store: {exc}") from None
    except (OSError, ssl.SSLError) as exc:
        raise environment_error(exc, _debug(ctx)) from None


class Announcer:
    """What an operator sees: rich lines on the console, or log records when logs are JSON."""

    def __init__(self, *, json_logs: bool) -> None:
        self._json = json_logs

    def say(self, markup: str, plain: str, level: int = logging.INFO, **ids: object) -> None:
        if self._json:
            log.log(level, plain, extra=ids)
        else:
            console.print(markup)

    def pair_request(self, request: PairRequest) -> None:
        how = "Confirm the code its terminal shows with: "
        self.say(
            "[yellow]●[/yellow] pairing request from runner "
            f"[bold]{escape(request.runner_name)}[/bold] (project {escape(request.project)}). "
            f"{how}[bold]opik-connect platform pair CODE[/bold]",
            f"pairing request from runner {request.runner_name} (project {request.project}). "
            f"{how}opik-connect platform pair CODE",
        )

    def runner(self, info: RunnerInfo) -> None:
        name = escape(info.name)
        if info.connected:
            files = info.root.visible_files if info.root else 0
            tail = f"connected (project {info.project}, {files} files)"
            markup = f"[green]●[/green] runner [bold]{name}[/bold] {escape(tail)}"
            self.say(markup, f"runner {info.name} {tail}", runner_id=info.runner_id)
        else:
            markup = f"[yellow]●[/yellow] runner [bold]{name}[/bold] disconnected"
            self.say(markup, f"runner {info.name} disconnected", runner_id=info.runner_id)


async def _serve(
    host: str,
    port: int,
    context: ssl.SSLContext | None,
    announce: Announcer,
    drain_timeout: float,
    metrics_at: tuple[str, int] | None,
    token: str | None,
    trusted_proxies: frozenset[str],
    store: str | None = None,
    sink_ports: tuple[int | None, int | None] = (None, None),
) -> None:
    from opik_connect.agent.platform.metrics import PlatformMetrics
    from opik_connect.agent.platform.ops_http import MetricsListener

    state = user_state_dir() / "platform"
    platform = Platform(
        host=host,
        port=port,
        pairing_store=PairingStore(state / "runners.json"),
        on_pair_request=announce.pair_request,
        on_runner_change=announce.runner,
        ssl_context=context,
        operator_token=token,
        trusted_proxies=trusted_proxies,
    )
    signals: asyncio.Queue[int] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, signals.put_nowait, sig)
    STORE_OVERRIDE.set(store)
    SINK_PORT_OVERRIDE.set(sink_ports[0])
    SINK_PUBLIC_PORT_OVERRIDE.set(sink_ports[1])
    await setup_platform(platform)
    metrics = PlatformMetrics(platform)
    listener = (
        MetricsListener(metrics.render, host=metrics_at[0], port=metrics_at[1])
        if metrics_at
        else None
    )
    await platform.start()
    if listener is not None:
        await listener.start()
        announce.say(
            f"[green]●[/green] metrics on [bold]http://{listener.host}:{listener.port}/metrics[/bold]",
            f"metrics on http://{listener.host}:{listener.port}/metrics",
        )
    run_file = server_run_file()
    record = PlatformRunFile(
        url=platform.url, token=platform.operator_token, pid=os.getpid(), started_at=time.time()
    )
    write_private_json(run_file, record.model_dump())
    if context is None and host not in ("127.0.0.1", "::1", "localhost"):
        announce.say(
            "[yellow]warning:[/yellow] plain ws:// on a public interface; use --tls-cert",
            "plain ws:// on a public interface; use --tls-cert (or a TLS-terminating proxy)",
            logging.WARNING,
        )
    announce.say(
        f"[green]●[/green] platform listening on [bold]{platform.url}[/bold]",
        f"platform listening on {platform.url}",
    )
    try:
        await signals.get()
        announce.say(
            f"[dim]● draining (up to {drain_timeout:g}s; signal again to stop now)[/dim]",
            f"draining (up to {drain_timeout:g}s; signal again to stop now)",
        )
        await _drain_or_stop(platform, drain_timeout, signals)
    finally:
        run_file.unlink(missing_ok=True)
        if listener is not None:
            await listener.stop()
        await platform.stop()
        announce.say("[dim]● stopped[/dim]", "stopped")


async def _drain_or_stop(
    platform: Platform, drain_timeout: float, signals: asyncio.Queue[int]
) -> None:
    """Drain (daemons get CLOSE_DRAINING and reconnect elsewhere) unless a second signal comes."""
    drain = asyncio.create_task(platform.drain(drain_timeout))
    again = asyncio.create_task(signals.get())
    await asyncio.wait({drain, again}, return_when=asyncio.FIRST_COMPLETED)
    for task in (drain, again):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if drain.cancelled():
        await platform.stop(CLOSE_DRAINING, "platform stopping")


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
