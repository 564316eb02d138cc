"""The PostgreSQL store beyond the shared suite: migrations, errors, a platform running on it."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from platform_api_testkit import approved, embedded_platform, make_git_repo, suite_run

from opik_connect.agent.platform.services import PlatformServices
from opik_connect.agent.platform.store import open_platform_store
from opik_connect.agent.platform.store_postgres import PostgresPlatformStore, redact_url
from opik_connect.agent.platform.store_schema import StoreError
from opik_connect.config import ProjectConfig
from opik_connect.connect.terminal.ask_client import read_json
from opik_connect.protocol import SuiteResult

pytestmark = pytest.mark.timeout(60)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def schema_revision(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]


MIGRATE = (
    "import sys; from opik_connect.agent.platform.store_postgres import upgrade_schema;"
    " upgrade_schema(sys.argv[1])"
)


def test_postgres_replica_processes_migrating_together_all_succeed(postgres_dsn: str) -> None:
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, postgres_dsn], stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    errors = [replica.communicate(timeout=60)[1] for replica in replicas]
    assert [replica.returncode for replica in replicas] == [0, 0, 0], errors
    assert schema_revision(postgres_dsn) == ["0004"]


async def test_postgres_stores_opening_together_in_one_process(postgres_dsn: str) -> None:
    stores = await asyncio.gather(*(open_platform_store(postgres_dsn) for _ in range(3)))
    try:
        assert all(isinstance(store, PostgresPlatformStore) for store in stores)
        assert schema_revision(postgres_dsn) == ["0004"]
        assert await stores[2].list_sessions() == []
    finally:
        for store in stores:
            await store.close()


async def test_postgres_schema_from_a_newer_release_is_refused(postgres_dsn: str) -> None:
    await (await open_platform_store(postgres_dsn)).close()
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match="newer opik-connect"):
        await open_platform_store(postgres_dsn)


async def test_postgres_unreachable_store_is_a_store_error_without_the_password() -> None:
    url = f"postgresql://team:s3cret@127.0.0.1:{closed_port()}/platform"
    with pytest.raises(StoreError) as caught:
        await open_platform_store(url)
    assert "s3cret" not in str(caught.value)
    assert redact_url(url) in str(caught.value)


def test_postgres_url_redaction_keeps_everything_but_the_password() -> None:
    assert redact_url("postgresql://u:p%40ss@h:5/db?sslmode=require") == (
        "postgresql://u:***@h:5/db?sslmode=require"
    )
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_postgres_store_url_is_a_project_setting() -> None:
    config = ProjectConfig.model_validate({"store": "postgresql://u@h/db"})
    assert config.store == "postgresql://u@h/db"


def test_postgres_platform_cli_store_that_cannot_open_fails_plainly(
    state_dir: Path, tmp_path: Path
) -> None:
    url = f"postgresql://team:s3cret@127.0.0.1:{closed_port()}/platform"
    done = subprocess.run(
        [sys.executable, "-m", "opik_connect.cli", "platform", "--port", "0", "--store", url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "OPIK_CONNECT_STATE_DIR": str(state_dir)},
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "store: cannot migrate postgresql://team:***@127.0.0.1" in done.stderr
    assert "s3cret" not in done.stderr + done.stdout


async def test_postgres_platform_records_daemon_events(tmp_path: Path, postgres_dsn: str) -> None:
    repo = make_git_repo(tmp_path / "project")
    services = PlatformServices(store=postgres_dsn, env={"ANTHROPIC_API_KEY": "k"})
    async with embedded_platform(repo, services=services) as p:
        assert isinstance(p.store, PostgresPlatformStore)
        await p.daemon.send_event("SuiteResult", SuiteResult(run=suite_run("b", "failed")))
        decided = approved("opik/fix/p1", "abc", suite_run("a", "passed", tree="opik/fix/p1"))
        await p.daemon.send_event("ProposalDecided", decided)
        await p.services.wait_recorded("ProposalDecided")
        [fix] = await read_json(p.address, "/v1/fixes")
        assert (fix["before_status"], fix["after_status"]) == ("failed", "passed")
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute("SELECT proposal_id, decision FROM decisions").fetchall()
    assert rows == [("p1", "approved")]


POSTGRES_MODULES = ("psycopg", "psycopg_pool", "alembic", "sqlalchemy")


def test_postgres_driver_and_migrations_stay_unimported_on_the_sqlite_path(tmp_path: Path) -> None:
    probe = (
        "import asyncio, sys\n"
        "from opik_connect.agent.platform.cli import platform_app\n"
        "from opik_connect.agent.platform.store import open_platform_store\n"
        "async def main():\n"
        f"    await (await open_platform_store({str(tmp_path / 'p.sqlite3')!r})).close()\n"
        "asyncio.run(main())\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({POSTGRES_MODULES!r})))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_postgres_store_without_the_extra_names_it() -> None:
    probe = (
        "import asyncio, sys\n"
        "sys.modules['psycopg'] = None\n"
        "from opik_connect.agent.platform.store import open_platform_store\n"
        "from opik_connect.agent.platform.store_schema import StoreError\n"
        "try:\n"
        "    asyncio.run(open_platform_store('postgresql://u@127.0.0.1/db'))\n"
        "except StoreError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "pip install 'opik-connect[postgres]'" in done.stdout
    assert "psycopg is missing" in done.stdout


def test_postgres_store_option_is_in_the_platform_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "opik_connect.cli", "platform", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
        check=True,
    )
    assert "--store" in done.stdout
    assert "project's `store` setting" in done.stdout
