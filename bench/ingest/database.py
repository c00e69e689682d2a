"""A scratch database for one run: on the local PostgreSQL when it answers, else an embedded one.

Either way the database is created fresh and dropped at the end; the embedded
server (pgserver, in a temporary directory) is stopped and its directory deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import secrets
import shutil
import tempfile
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class ScratchDatabase:
    dsn: str
    name: str
    where: str  # "local" or "embedded"
    admin_dsn: str


async def _reachable(admin_dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(admin_dsn, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    await conn.close()
    return True


def _with_database(dsn: str, name: str) -> str:
    """``dsn`` with its database path replaced (the query, e.g. a socket ``host=``, is kept)."""
    head, _, query = dsn.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


async def _create(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        # FORCE: a gateway that was killed may leave backends behind for a moment.
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _start_embedded(workdir: Path) -> Any:
    # As root, pgserver runs postgres as its own user, which must traverse this directory.
    workdir.chmod(0o755)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs without XDG_RUNTIME_DIR
        pgserver: Any = importlib.import_module("pgserver")
    return pgserver.get_server(workdir / "pg", cleanup_mode="stop")


@contextlib.asynccontextmanager
async def scratch_database(admin_dsn: str = DEFAULT_ADMIN_URL) -> AsyncIterator[ScratchDatabase]:
    name = f"bench_ingest_{os.getpid()}_{secrets.token_hex(3)}"
    if await _reachable(admin_dsn):
        await _create(admin_dsn, name)
        try:
            yield ScratchDatabase(_with_database(admin_dsn, name), name, "local", admin_dsn)
        finally:
            await _drop(admin_dsn, name)
        return

    log.warning("%s unreachable: using an embedded PostgreSQL", admin_dsn.split("@")[-1])
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-pg-"))
    server = await asyncio.to_thread(_start_embedded, workdir)
    try:
        embedded_admin = str(server.get_uri("postgres"))
        await _create(embedded_admin, name)
        try:
            yield ScratchDatabase(str(server.get_uri(name)), name, "embedded", embedded_admin)
        finally:
            await _drop(embedded_admin, name)
    finally:
        await asyncio.to_thread(server.cleanup)
        shutil.rmtree(workdir, ignore_errors=True)
