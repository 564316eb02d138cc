"""The PostgreSQL test kit: a real server per run, a fresh database per test, clear failures."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from postgres_kit import (
    BIN_ENV,
    STALE_AFTER_S,
    PostgresServer,
    PostgresUnavailable,
    pgserver_bin_dir,
    remove_stale_dirs,
    start_any_server,
    start_server,
)

IS_ROOT = os.geteuid() == 0


def _owner_uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(row for row in status.splitlines() if row.startswith("Uid:"))
    return int(line.split()[1])


def test_postgres_fresh_database_is_empty_and_writable(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (41)")
        (value,) = conn.execute("SELECT x + 1 FROM t").fetchone()  # type: ignore[misc]
    assert tables == (0,)
    assert value == 42


def test_postgres_each_test_gets_its_own_database(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    other = postgres_server.create_database()
    try:
        assert other not in postgres_dsn
        with psycopg.connect(postgres_server.dsn(other)) as conn:
            (name,) = conn.execute("SELECT current_database()").fetchone()  # type: ignore[misc]
        assert name == other
    finally:
        postgres_server.drop_database(other)


@pytest.mark.skipif(not IS_ROOT, reason="only root needs the server to drop privileges")
def test_postgres_server_runs_unprivileged_as_root(postgres_server: PostgresServer) -> None:
    assert _owner_uid(postgres_server.process.pid) != 0


def test_postgres_pgserver_wheel_binaries_start() -> None:
    """The wheel is the fallback on machines with no distribution server: it must work too."""
    bin_dir = pgserver_bin_dir()
    assert bin_dir is not None, "the test extra must install pgserver"
    server = start_server(bin_dir)
    try:
        with psycopg.connect(server.dsn()) as conn:
            (version,) = conn.execute("SHOW server_version").fetchone()  # type: ignore[misc]
        assert version.split(".")[0].isdigit()
        assert server.version.startswith("postgres (PostgreSQL)")
    finally:
        server.stop()
    assert not server.base_dir.exists()


@pytest.mark.skipif(not IS_ROOT, reason="an unreachable bin dir only matters when dropping root")
def test_postgres_bin_dir_unreachable_by_server_user_is_copied(tmp_path: Path) -> None:
    bin_dir = pgserver_bin_dir()
    assert bin_dir is not None
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    site = bin_dir.parents[2]  # the wheel's layout: pgserver/pginstall/bin beside pgserver.libs
    for name in ("pgserver", "pgserver.libs"):
        shutil.copytree(site / name, private / name, symlinks=True)
    server = start_server(private / "pgserver" / "pginstall" / "bin")
    try:
        assert server.bin_dir.is_relative_to(server.base_dir)
        with psycopg.connect(server.dsn()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()


def test_postgres_no_binaries_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BIN_ENV, str(tmp_path / "nothing-here"))
    with pytest.raises(PostgresUnavailable, match=BIN_ENV) as caught:
        start_any_server()
    assert "nothing-here): no postgres/initdb there" in str(caught.value)


def test_postgres_left_over_data_dirs_go_unless_their_server_lives(tmp_path: Path) -> None:
    now = time.time()
    old = now - STALE_AFTER_S - 1
    dead, live, fresh, other = (tmp_path / n for n in ("ocpg-dead", "ocpg-live", "ocpg-new", "x"))
    for base in (dead, live, fresh, other):
        (base / "data").mkdir(parents=True)
    (dead / "data" / "postmaster.pid").write_text("999999999\n/tmp\n")
    (live / "data" / "postmaster.pid").write_text(f"{os.getpid()}\n/tmp\n")
    for base in (dead, live, other):
        os.utime(base, (old, old))
    assert remove_stale_dirs(tmp_path, now) == [dead]
    assert {p.name for p in tmp_path.iterdir()} == {"ocpg-live", "ocpg-new", "x"}


KILLED_RUN = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from postgres_kit import start_any_server
server = start_any_server()
print(server.process.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_postgres_server_of_a_killed_test_process_shuts_down() -> None:
    tests = str(Path(__file__).resolve().parent)
    run = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, tests], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == -9, run.stderr
    pid = int(run.stdout.split()[0])
    try:
        exited = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already gone
    try:
        readable, _, _ = select.select([exited], [], [], 30)
    finally:
        os.close(exited)
    if not readable:
        os.kill(pid, signal.SIGKILL)
    assert readable, "the orphaned server was still running 30 s after its test process died"
