"""A real PostgreSQL for tests: the machine's when reachable, else an embedded one (pgserver)."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import uuid
from typing import Any

import asyncpg

from inbox.migrations import migrate


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


_embedded: Any = None


def server_dsn() -> str:
    """DSN of a maintenance database on a running server."""
    global _embedded
    if url := os.environ.get("TEST_DATABASE_URL"):
        return url
    if _reachable("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    if _embedded is None:
        import pgserver

        _embedded = pgserver.get_server(tempfile.mkdtemp(prefix="igw-test-pg-"), cleanup_mode="delete")
    return str(_embedded.get_uri())


def with_database(dsn: str, name: str) -> str:
    base, _, _ = dsn.rpartition("/")
    query = ""
    if "?" in dsn.rpartition("/")[2]:
        query = "?" + dsn.rpartition("/")[2].split("?", 1)[1]
    return f"{base}/{name}{query}"


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_template() -> str:
    """A migrated database used as TEMPLATE for every test database."""
    dsn = server_dsn()
    name = f"igw_tmpl_{uuid.uuid4().hex[:10]}"

    async def run() -> None:
        await _admin(dsn, f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(with_database(dsn, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(run())
    return name


async def create_database(template: str | None) -> tuple[str, str]:
    dsn = server_dsn()
    name = f"igw_test_{uuid.uuid4().hex[:12]}"
    tmpl = f' TEMPLATE "{template}"' if template else ""
    await _admin(dsn, f'CREATE DATABASE "{name}"{tmpl}')
    return name, with_database(dsn, name)


async def drop_database(name: str) -> None:
    await _admin(server_dsn(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_database_sync(name: str) -> None:
    asyncio.run(drop_database(name))
