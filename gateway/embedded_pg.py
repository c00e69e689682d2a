"""An embedded PostgreSQL (pgserver) for when ``DATABASE_URL`` is unset.

The server lives under ``GATEWAY_DATA_DIR/pg`` and listens on a unix socket in
that directory only (no TCP port to collide with). pgserver counts the
processes using one data directory (``.handle_pids.json``) and stops the server
when the last of them lets go, so ``inbox-gateway account create`` can run next
to ``inbox-gateway serve`` without stopping it.

As root, pgserver runs PostgreSQL as a system user ``pgserver`` (created on
first use), chowns the data directory to it and opens the directory's parents
for traversal; that is what lets ``make run`` work inside a root container.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

DATABASE = "inbox_gateway"


class EmbeddedPostgresError(Exception):
    """The embedded PostgreSQL could not be started; the message is one line."""


def _import_pgserver() -> Any:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and
    # falls back to /tmp; that is fine for pgserver's lock file.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import pgserver

    return pgserver


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _prune_dead_handles(pgdata: Path) -> None:
    """Forget processes that died holding the server (kill -9, power loss).

    Without this a stale pid keeps pgserver from ever stopping the server again.
    """
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _pid_alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


class EmbeddedPostgres:
    """One process's handle on the embedded server.

    ``start`` returns the DSN of the ``inbox_gateway`` database (created when
    missing); ``stop`` releases this process's handle, which stops the server
    when no other live process uses it.
    """

    def __init__(self, data_dir: Path, database: str = DATABASE) -> None:
        self.pgdata = (data_dir / "pg").expanduser().resolve()
        self.database = database
        self._server: Any = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def _start_sync(self) -> Any:
        pgserver = _import_pgserver()
        try:
            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmbeddedPostgresError(
                f"cannot create the data directory {self.pgdata.parent} (GATEWAY_DATA_DIR): {exc.strerror}"
            ) from exc
        if self.pgdata.exists():
            _prune_dead_handles(self.pgdata)
        try:
            return pgserver.get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:  # pgserver raises CalledProcessError, TimeoutExpired, AssertionError…
            log_file = self.pgdata / "log"
            raise EmbeddedPostgresError(
                f"embedded PostgreSQL did not start in {self.pgdata} ({type(exc).__name__}); see {log_file}"
            ) from exc

    async def start(self) -> str:
        self._server = await asyncio.to_thread(self._start_sync)
        try:
            await self._ensure_database()
        except BaseException:
            await self.stop()
            raise
        return self.dsn

    @property
    def dsn(self) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.get_uri(self.database))

    async def _ensure_database(self) -> None:
        conn = await asyncpg.connect(self._server.get_uri("postgres"))
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", self.database)
            if not exists:
                # Another process may create it between our check and now.
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                    await conn.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await conn.close()

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            # Stops PostgreSQL (pg_ctl -w stop) only if no other live process holds it.
            await asyncio.to_thread(server.cleanup)


@contextlib.asynccontextmanager
async def resolved_database(database_url: str | None, data_dir: Path) -> AsyncIterator[str]:
    """``DATABASE_URL`` when set, else the embedded server's DSN for the duration of the block."""
    if database_url:
        yield database_url
        return
    embedded = EmbeddedPostgres(data_dir)
    dsn = await embedded.start()
    try:
        yield dsn
    finally:
        await embedded.stop()
