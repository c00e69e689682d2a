"""Backup and restore as the README describes it: pg_dump, pg_restore into a fresh database, migrate --status."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pgserver
import pytest

from tests.api.helpers import inbound, make_account, make_channel
from tests.cli_helpers import run_cli
from tests.server import run_server


def pg_tool(name: str) -> str:
    """The machine's client when it has one, else the one shipped with the embedded server's wheel."""
    found = shutil.which(name)
    if found:
        return found
    shipped = Path(pgserver.__file__).parent / "pginstall" / "bin" / name
    if not shipped.exists():
        pytest.skip(f"no {name} on this machine")
    return str(shipped)


async def run(*command: str) -> str:
    proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_a_restored_dump_serves_the_same_conversations(tmp_path, db_url, empty_db_url, pool):
    account_id, key = await make_account(pool)
    channel = await make_channel(pool, account_id, provider_key="1001", phone_number_id="1001")
    for n in range(3):
        await inbound(pool, channel, external_id=f"wamid.backup.{n}", contact=f"491510000000{n}", text=f"hello {n}")

    async with run_server(db_url, gateway_workers=False) as srv, srv.client(key) as http:
        before = (await http.get("/api/v1/conversations")).json()["items"]
        first = before[0]["id"]
        timeline_before = (await http.get(f"/api/v1/conversations/{first}/timeline")).json()["items"]
    assert len(before) == 3

    dump = tmp_path / "gateway.dump"
    await run(pg_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={dump}", db_url)
    await run(pg_tool("pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={empty_db_url}", str(dump))

    status = await run_cli("migrate", "--status", DATABASE_URL=empty_db_url)
    assert status.returncode == 0, status.stderr
    assert status.stdout.strip().endswith(", 0 pending"), status.stdout

    async with run_server(empty_db_url, gateway_workers=False) as srv, srv.client(key) as http:
        after = (await http.get("/api/v1/conversations")).json()["items"]
        timeline_after = (await http.get(f"/api/v1/conversations/{first}/timeline")).json()["items"]
    assert after == before
    assert timeline_after == timeline_before
