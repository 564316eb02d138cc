"""A real PostgreSQL server for the tests, started from installed binaries with nothing by hand.

Binaries come from `OPIK_CONNECT_TEST_PG_BIN` when set, else the distribution's server (`postgres`
on PATH or `/usr/lib/postgresql/*/bin`), else the `pgserver` wheel of the test extra, which ships
them. initdb and postgres refuse to run as root, so as root the server runs as `nobody` with a data
dir it owns. When no server can be started the tests that need one fail, saying why: never a skip.
A test process killed outright takes its server down with it (Linux), and the data dirs such
runs left behind are removed by the next run.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BIN_ENV = "OPIK_CONNECT_TEST_PG_BIN"
SUPERUSER = "postgres"
READY_LINE = "database system is ready to accept connections"
START_ATTEMPTS = 5  # a fresh port per attempt: another process may take the one we picked
UNPRIVILEGED_USER = "nobody"
DIR_PREFIX = "ocpg-"
STALE_AFTER_S = 600.0
"""A data dir with no live postmaster this old was left by a killed run (initdb takes seconds)."""
PR_SET_PDEATHSIG = 1
# Loopback only; durability off, as a test server loses nothing worth keeping.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be started; the message says what was tried."""


@dataclass
class PostgresServer:
    """A running server: its binaries, data dir, loopback port and the process we own."""

    bin_dir: Path
    base_dir: Path
    port: int
    process: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)

    @property
    def version(self) -> str:
        return _run([str(self.bin_dir / "postgres"), "--version"]).strip()

    def dsn(self, database: str = "postgres") -> str:
        """A libpq URL over loopback TCP, usable by psycopg, asyncpg and subprocesses."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh empty database; returns its name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then the data dir goes."""
        if self.process.poll() is None:
            self.process.send_signal(2)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(statement)


def candidate_bin_dirs() -> list[tuple[str, Path]]:
    """Where PostgreSQL server binaries may be, in the order they are tried."""
    found: list[tuple[str, Path]] = []
    if os.environ.get(BIN_ENV):
        return [(BIN_ENV, Path(os.environ[BIN_ENV]))]
    on_path = shutil.which("postgres")
    if on_path:
        found.append(("PATH", Path(on_path).resolve().parent))
    distro = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_major_version, reverse=True)
    found.extend(("distribution", path) for path in distro)
    wheel = pgserver_bin_dir()
    if wheel is not None:
        found.append(("pgserver wheel", wheel))
    unique: dict[Path, tuple[str, Path]] = {}
    for origin, path in found:
        unique.setdefault(path, (origin, path))
    return list(unique.values())


def pgserver_bin_dir() -> Path | None:
    """The server binaries inside the installed `pgserver` wheel, found without importing it."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def start_server(bin_dir: Path) -> PostgresServer:
    """initdb into a tmp dir, start postgres on a free loopback port; PostgresUnavailable if not."""
    remove_stale_dirs(Path(tempfile.gettempdir()))
    base = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
    try:
        user = _server_user()
        data = base / "data"
        data.mkdir()
        if user is not None:
            _chown_tree(base, user)
        runnable = _runnable_bin_dir(bin_dir, base, user)
        initdb = [str(runnable / "initdb"), "-D", str(data), "-U", SUPERUSER]
        _run([*initdb, "--auth=trust", "--encoding=UTF8", "--no-sync"], user=user)
        return _start_postmaster(runnable, base, data, user)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise


def start_any_server() -> PostgresServer:
    """The first candidate that starts; PostgresUnavailable listing every failure otherwise."""
    failures: list[str] = []
    for origin, bin_dir in candidate_bin_dirs():
        if not ((bin_dir / "postgres").is_file() and (bin_dir / "initdb").is_file()):
            failures.append(f"{origin} ({bin_dir}): no postgres/initdb there")
            continue
        try:
            return start_server(bin_dir)
        except PostgresUnavailable as exc:
            failures.append(f"{origin} ({bin_dir}): {exc}")
    tried = "\n  ".join(failures) or "nothing: no postgres/initdb found anywhere"
    raise PostgresUnavailable(
        "cannot start a PostgreSQL server for the tests. Tried:\n  "
        f"{tried}\nInstall the test extra (`pip install -e '.[test]'`, which brings the "
        f"`pgserver` wheel) or the distribution's server, or point {BIN_ENV} at a bin dir."
    )


def _start_postmaster(bin_dir: Path, base: Path, data: Path, user: str | None) -> PostgresServer:
    last_error = ""
    for _ in range(START_ATTEMPTS):
        port = _free_port()
        settings = {**SERVER_SETTINGS, "unix_socket_directories": str(base)}
        options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        process = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), *options],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            user=user,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        server = PostgresServer(bin_dir=bin_dir, base_dir=base, port=port, process=process)
        if _wait_ready(server):
            return server
        process.wait()
        last_error = "\n".join(server.log[-15:])
        if "could not bind" not in last_error and "already in use" not in last_error:
            break
    raise PostgresUnavailable(f"postgres did not start:\n{last_error}")


def _die_with_parent() -> None:
    """In the server's process before exec: a fast shutdown (SIGINT) when the thread that
    started it dies, even by SIGKILL; the session fixture starts it from the main thread."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)


def remove_stale_dirs(tmp: Path, now: float | None = None) -> list[Path]:
    """Delete the data dirs of earlier runs whose postmaster is gone; the ones removed."""
    now = time.time() if now is None else now
    removed = []
    for base in tmp.glob(f"{DIR_PREFIX}*"):
        try:
            stale = base.is_dir() and now - base.stat().st_mtime > STALE_AFTER_S
        except OSError:
            continue
        if stale and not _postmaster_alive(base / "data" / "postmaster.pid"):
            shutil.rmtree(base, ignore_errors=True)
            removed.append(base)
    return removed


def _postmaster_alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except PermissionError:
        return True  # alive, as another user
    except (OSError, ValueError):
        return False
    return True


def _wait_ready(server: PostgresServer) -> bool:
    """Read the server's log until it is ready (True) or it exits (False); then keep draining."""
    stream = server.process.stderr
    assert stream is not None
    for line in stream:
        server.log.append(line.rstrip())
        if READY_LINE in line:
            threading.Thread(target=_drain, args=(stream, server.log), daemon=True).start()
            return True
    return False


def _drain(stream: object, log: list[str]) -> None:
    """Keep the pipe empty so the server never blocks writing its log."""
    for line in stream:  # type: ignore[attr-defined]
        log.append(line.rstrip())


def _server_user() -> str | None:
    """None when not root; else the unprivileged account the server runs as."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError as exc:
        raise PostgresUnavailable(
            f"running as root and no `{UNPRIVILEGED_USER}` account to run postgres as"
        ) from exc
    return UNPRIVILEGED_USER


def _runnable_bin_dir(bin_dir: Path, base: Path, user: str | None) -> Path:
    """bin_dir if `user` can run it; else a copy of its install tree that user can reach."""
    if user is None or _can_run(bin_dir, user):
        return bin_dir
    copy = base / "pg"
    tree = copy / "pkg" / bin_dir.parent.name
    shutil.copytree(bin_dir.parent, tree, symlinks=True)
    vendored = bin_dir.parents[2] / "pgserver.libs"  # the wheel's rpath: $ORIGIN/../../../
    if vendored.is_dir():
        shutil.copytree(vendored, copy / vendored.name, symlinks=True)
    _chown_tree(copy, user)
    if not _can_run(tree / "bin", user):
        raise PostgresUnavailable(f"`{user}` cannot run {bin_dir}/postgres, even from a copy")
    return tree / "bin"


def _can_run(bin_dir: Path, user: str) -> bool:
    try:
        _run([str(bin_dir / "postgres"), "--version"], user=user)
    except PostgresUnavailable:
        return False
    return True


def _run(argv: list[str], user: str | None = None) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, user=user, timeout=120, check=False, cwd="/"
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise PostgresUnavailable(f"{argv[0]}: {exc}") from exc
    if done.returncode != 0:
        raise PostgresUnavailable(f"{' '.join(argv[:2])} failed: {done.stderr.strip()[-800:]}")
    return done.stdout


def _chown_tree(root: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for path in [root, *root.rglob("*")]:
        os.lchown(path, entry.pw_uid, entry.pw_gid)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _major_version(path: Path) -> int:
    match = re.fullmatch(r"\d+", path.parent.name)
    return int(match.group()) if match else 0


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real server for the whole run; a clear failure (not a skip) when none can start."""
    try:
        server = start_any_server()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database per test, dropped afterwards; its DSN."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.dsn(name)
    finally:
        postgres_server.drop_database(name)
