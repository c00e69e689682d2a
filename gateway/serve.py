"""``inbox-gateway serve``: database, migrations, then the HTTP/WS server.

Startup, in order:
1. resolve the database: ``DATABASE_URL``, else start the embedded PostgreSQL;
2. apply pending migrations (under the migration advisory lock, so several
   processes starting at once are safe);
3. run uvicorn with ``create_app`` until SIGINT/SIGTERM.
Shutdown: uvicorn stops (the app's lifespan closes workers and the pool), then
the embedded PostgreSQL is stopped. A signal that arrives during steps 1–2
skips the rest and shuts down the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import uvicorn

from gateway import log_redaction
from gateway.config import SERVER_MAX_HEAD_BYTES, WS_MAX_FRAME_BYTES, Settings
from gateway.embedded_pg import resolved_database
from gateway.http import DB_ERRORS
from gateway.logs import configure_logging
from gateway.secret_box import box_for
from gateway.secret_rotation import seal_at_start
from gateway.shutdown import GracefulServer
from inbox.db import connect
from inbox.migrations import Migration, migrate

log = logging.getLogger(__name__)

T = TypeVar("T")

# Points the runner at another sql/ directory (tests of edited migrations).
# Deliberately undocumented: production always uses the shipped files.
MIGRATIONS_DIR_ENV = "GATEWAY_MIGRATIONS_DIR"


class DatabaseUnreachable(Exception):
    """Could not connect to PostgreSQL; the message is one line fit for a terminal."""


def migrations_directory() -> Path | None:
    value = os.environ.get(MIGRATIONS_DIR_ENV)
    return Path(value) if value else None


def describe_dsn(dsn: str) -> str:
    """The DSN without its password, for error messages."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or ""
        if not host and "host=" in parts.query:
            host = parts.query.split("host=", 1)[1].split("&", 1)[0]
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
        return f"{user}{host}{port}{parts.path}"
    except ValueError:
        return "DATABASE_URL"


async def connect_or_explain(dsn: str, *, seconds: float = 10) -> asyncpg.Connection:
    try:
        async with asyncio.timeout(seconds):
            return await connect(dsn)
    except DB_ERRORS as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatabaseUnreachable(f"cannot connect to the database {describe_dsn(dsn)}: {reason}") from exc


async def seal_secrets(dsn: str, settings: Settings) -> None:
    """Seal plaintext channel secrets and check the key before the server starts, so a wrong
    GATEWAY_SECRET_KEY stops ``serve`` with one line (SecretsUnreadable) instead of a lifespan traceback."""
    conn = await connect_or_explain(dsn)
    try:
        await seal_at_start(conn, box_for(settings))
    finally:
        await conn.close()


async def apply_migrations(dsn: str, *, dry_run: bool = False) -> list[Migration]:
    conn = await connect_or_explain(dsn)
    try:
        return await migrate(conn, migrations_directory(), dry_run=dry_run)
    finally:
        await conn.close()


def run_async(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run on uvloop when available (as uvicorn would), else the default loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


class _StopSignals:
    """SIGINT/SIGTERM handling around uvicorn.

    While uvicorn runs it owns the handlers; when it returns it restores ours and
    re-raises the signal it caught, which lands here and only records it. Before
    uvicorn runs (embedded database start, migrations) a signal is recorded and
    startup stops at the next step.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.server: uvicorn.Server | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self.server is not None:
            self.server.should_exit = True

    def install(self) -> None:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _configure_logging(level: str, fmt: str = "text") -> None:
    configure_logging(level, fmt)
    log_redaction.install()


def _http_protocol() -> Any:
    try:
        from gateway.bounded_http import BoundedHttpToolsProtocol
    except ImportError:  # pragma: no cover - no httptools wheel: h11 and its own bound
        return "h11"
    return BoundedHttpToolsProtocol


def uvicorn_config(app: Any, settings: Settings, *, log_level: str | None = None) -> uvicorn.Config:
    """uvicorn's settings for the gateway (``serve``, ``demo`` and the tests' real servers use the same).

    Its loggers keep no handlers of their own (``log_config=None``): their lines go
    through the root handler, with its format (gateway.logs) and redaction
    (gateway.log_redaction).
    """
    config = uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        lifespan="on",
        log_level=log_level or settings.gateway_log_level.lower(),
        log_config=None,
        timeout_graceful_shutdown=settings.gateway_shutdown_timeout,  # type: ignore[arg-type]
        # Refused by the server, before buffering, rather than by the app after.
        ws_max_size=WS_MAX_FRAME_BYTES,
        # A bound on request heads above the app's own header limit (gateway.limits),
        # which answers 431 first; httptools has none of its own (gateway.bounded_http).
        http=_http_protocol(),
        h11_max_incomplete_event_size=SERVER_MAX_HEAD_BYTES,
    )
    log_redaction.install()
    return config


class PortUnavailable(Exception):
    """The address to listen on cannot be bound; the message is one line fit for a terminal."""


def listen_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket before anything else starts, so a busy port is one clear
    line (exit 1) instead of uvicorn's exit after the database and workers came up."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise PortUnavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise PortUnavailable(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


async def _serve(settings: Settings, stop: _StopSignals) -> None:
    from gateway.app import create_app  # imports every channel module; keep `--help` fast

    sock = listen_socket(settings.gateway_host, settings.gateway_port)
    try:
        await _serve_on(sock, settings, stop, create_app)
    finally:
        sock.close()


async def _serve_on(sock: socket.socket, settings: Settings, stop: _StopSignals, create_app: Any) -> None:
    async with resolved_database(settings.database_url, settings.gateway_data_dir) as dsn:
        if stop.requested:
            return
        applied = await apply_migrations(dsn)
        for migration in applied:
            log.info("applied migration %04d_%s", migration.version, migration.name)
        await seal_secrets(dsn, settings)
        if stop.requested:
            return
        app = create_app(settings.model_copy(update={"database_url": dsn}))
        server = GracefulServer(uvicorn_config(app, settings))
        stop.server = server
        await server.serve(sockets=[sock])


def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM. Raises DatabaseUnreachable, MigrationError, EmbeddedPostgresError,
    SecretKeyError, SecretsUnreadable;
    SystemExit when uvicorn cannot start (port in use, lifespan failure)."""
    _configure_logging(settings.gateway_log_level, settings.gateway_log_format)
    stop = _StopSignals()
    stop.install()
    try:
        run_async(lambda: _serve(settings, stop))
    finally:
        stop.restore()
