"""``inbox-gateway serve`` with no DATABASE_URL: the embedded PostgreSQL, end to end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import stat
import tempfile
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from inbox.accounts import authenticate
from tests import log_leaks
from tests.cli_helpers import REPO, cli_command, cli_env, run_cli
from tests.redis_server import free_port


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    """Postmasters started with ``-D pgdata`` (their children exit with them)."""
    target = str(pgdata.resolve())
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        if proc.info["name"] == "postgres" and target in (proc.info["cmdline"] or []):
            found.append(proc)
    return found


@pytest.fixture
def data_dir():
    # Not under pytest's tmp_path: as root, PostgreSQL runs as the `pgserver` user, which
    # must traverse the parents, and a concurrently starting pytest session resets its
    # base temp dir to 0700.
    root = Path(tempfile.mkdtemp(prefix="igw-serve-test-"))
    path = root / "data"
    yield path
    # Whatever the test did, leave no server behind.
    for proc in postgres_processes(path / "pg"):
        with contextlib.suppress(psutil.Error):
            proc.terminate()
            proc.wait(10)
    shutil.rmtree(root, ignore_errors=True)


async def _wait_healthy(url: str, proc: asyncio.subprocess.Process, seconds: float = 60) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(int(seconds * 10)):
            if proc.returncode is not None:
                raise AssertionError(f"serve exited with {proc.returncode} before it was healthy")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url + "/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError("serve did not become healthy")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
async def test_serve_without_database_url_runs_on_an_embedded_postgres_and_stops_it_on_a_signal(data_dir, sig):
    port = free_port()
    # No key either, as after `make run`: one is generated into the data dir.
    settings = {"GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_PORT": str(port),
                "GATEWAY_LOG_LEVEL": log_leaks.SERVER_LOG_LEVEL, "GATEWAY_SECRET_KEY": ""}
    proc = await asyncio.create_subprocess_exec(
        *cli_command("serve"), env=cli_env(**settings), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        await _wait_healthy(url, proc)
        assert len(postgres_processes(data_dir / "pg")) == 1, postgres_processes(data_dir / "pg")
        assert stat.S_IMODE((data_dir / "secret.key").stat().st_mode) == 0o600

        # Another command on the same data dir shares the running server and leaves it running.
        created = await run_cli("account", "create", "acme", "--json", **settings)
        assert created.returncode == 0, created.stderr
        key = json.loads(created.stdout)["api_key"]
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            assert (await client.get("/readyz")).status_code == 200
        conn = await asyncpg.connect(f"postgresql://postgres@/inbox_gateway?host={data_dir / 'pg'}")
        try:
            assert await authenticate(conn, key) is not None
        finally:
            await conn.close()

        proc.send_signal(sig)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
        log_leaks.collect("output of serve (embedded postgres)", (stdout + stderr).decode(errors="replace"))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    assert proc.returncode == 0, stderr.decode()
    assert "Traceback" not in stderr.decode(), stderr.decode()
    assert postgres_processes(data_dir / "pg") == []
    assert not (data_dir / "pg" / "postmaster.pid").exists()


@pytest.mark.timeout(180)
async def test_the_embedded_database_keeps_its_data_across_restarts(data_dir):
    settings = {"GATEWAY_DATA_DIR": str(data_dir)}

    first = await run_cli("account", "create", "one", "--json", **settings)
    second = await run_cli("account", "create", "two", "--json", **settings)
    status = await run_cli("migrate", "--status", **settings)

    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert json.loads(second.stdout)["account_id"] == json.loads(first.stdout)["account_id"] + 1
    assert status.stdout.splitlines()[-1].endswith(", 0 pending")
    assert postgres_processes(data_dir / "pg") == []


@pytest.mark.timeout(180)
async def test_a_holder_that_died_does_not_keep_the_embedded_server_running(data_dir):
    settings = {"GATEWAY_DATA_DIR": str(data_dir)}
    assert (await run_cli("migrate", **settings)).returncode == 0
    # A process killed with -9 never released its handle.
    handles = data_dir / "pg" / ".handle_pids.json"
    handles.write_text(json.dumps([2**22 + 12345]))

    done = await run_cli("account", "create", "x", **settings)

    assert done.returncode == 0, done.stderr
    assert postgres_processes(data_dir / "pg") == []
