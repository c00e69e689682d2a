"""The ``inbox-gateway`` command (also ``python -m gateway``).

Exit codes: 0 success; 1 the work failed (database unreachable, a migration
refused, …); 2 a wrong setting or wrong arguments. Failures print one line on
stderr starting with ``inbox-gateway:``, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from gateway import log_redaction
from gateway.config import Settings, SettingsError, load_settings
from gateway.embedded_pg import EmbeddedPostgresError, resolved_database
from gateway.secret_box import SecretKeyError, SecretsUnreadable
from gateway.serve import (
    DatabaseUnreachable,
    PortUnavailable,
    apply_migrations,
    connect_or_explain,
    migrations_directory,
    run_async,
)
from inbox.errors import MigrationError

PROG = "inbox-gateway"
T = TypeVar("T")


class CliError(Exception):
    """A failure to report as one line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Asterisk, WhatsApp and Telegram normalised into one live inbox.",
        epilog="Settings come from the environment (DATABASE_URL, REDIS_URL, GATEWAY_HOST, GATEWAY_PORT, …).",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)

    verbs.add_parser("serve", help="apply pending migrations, then run the HTTP/WS server and workers")

    migrate = verbs.add_parser("migrate", help="apply pending sql/ migrations")
    mode = migrate.add_mutually_exclusive_group()
    mode.add_argument("--status", action="store_true", help="list every migration and whether it is applied")
    mode.add_argument("--dry-run", action="store_true", help="list what would be applied, change nothing")

    account = verbs.add_parser("account", help="manage accounts")
    account_verbs = account.add_subparsers(dest="account_verb", metavar="ACTION", required=True)
    create = account_verbs.add_parser("create", help="create an account and print its admin API key once")
    create.add_argument("name")
    create.add_argument("--json", action="store_true", help='print one line {"account_id": …, "api_key": "…"}')

    retention = verbs.add_parser("retention", help="retention and PII policies")
    retention_verbs = retention.add_subparsers(dest="retention_verb", metavar="ACTION", required=True)
    run = retention_verbs.add_parser("run", help="apply every account's retention policy now")
    run.add_argument("--dry-run", action="store_true", help="report what would be deleted or redacted")
    run.add_argument("--json", action="store_true", help="print the report as one JSON line")

    replay = verbs.add_parser("replay", help="re-process dead-lettered inbound events with the current parsers")
    replay.add_argument("--account", type=int, metavar="ID", help="only this account's dead letters")
    replay.add_argument("--id", dest="ids", type=int, action="append", metavar="ID",
                        help="only this inbound event (repeatable)")
    replay.add_argument("--json", action="store_true", help="print a one-line JSON summary")
    secrets = verbs.add_parser("secrets", help="channel secrets at rest (GATEWAY_SECRET_KEY)")
    secrets_verbs = secrets.add_subparsers(dest="secrets_verb", metavar="ACTION", required=True)
    rotate = secrets_verbs.add_parser(
        "rotate", help="re-encrypt every channel's secrets under the first key of GATEWAY_SECRET_KEY")
    rotate.add_argument("--json", action="store_true", help="print the counts as one JSON line")
    secrets_verbs.add_parser("generate-key", help="print a new random key for GATEWAY_SECRET_KEY")
    demo = verbs.add_parser("demo", help="serve with a demo account and simulated WhatsApp, Telegram and calls")
    demo.add_argument("--interval", type=float, default=4.0, metavar="SECONDS",
                      help="average seconds between simulated customer events (default 4)")
    return parser


def _print(line: str = "") -> None:
    print(line, flush=True)


# -- verbs -----------------------------------------------------------------------------------------


def _with_database(settings: Settings, work: Callable[[str], Awaitable[T]]) -> T:
    async def main() -> T:
        async with resolved_database(settings.database_url, settings.gateway_data_dir) as dsn:
            return await work(dsn)

    return run_async(main)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.serve import serve

    try:
        serve(settings)
    except SystemExit as exc:  # uvicorn exits when it cannot bind or the app fails to start
        code = exc.code if isinstance(exc.code, int) else 1
        if code:
            raise CliError("the server failed to start (see the log above)", code) from exc
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from inbox.migrations import status

    async def show_status(dsn: str) -> None:
        conn = await connect_or_explain(dsn)
        try:
            rows = await status(conn, migrations_directory())
        finally:
            await conn.close()
        width = max((len(f"{r.version:04d}_{r.name}") for r in rows), default=0)
        for r in rows:
            label = f"{r.version:04d}_{r.name}".ljust(width)
            state = f"applied {r.applied_at.isoformat(timespec='seconds')}" if r.applied_at else "pending"
            _print(f"{label}  {state}")
        pending = sum(1 for r in rows if r.applied_at is None)
        _print(f"{len(rows)} migrations, {pending} pending")

    async def run(dsn: str) -> None:
        done = await apply_migrations(dsn, dry_run=args.dry_run)
        verb = "would apply" if args.dry_run else "applied"
        for m in done:
            _print(f"{verb} {m.version:04d}_{m.name}")
        if not done:
            _print("database is up to date")
        elif args.dry_run:
            _print(f"{len(done)} pending; nothing was changed (dry run)")

    _with_database(settings, show_status if args.status else run)
    return 0


def cmd_account_create(settings: Settings, args: argparse.Namespace) -> int:
    from inbox.accounts import create_account

    name = args.name.strip()
    if not name:
        raise CliError("account name must not be empty", 2)

    async def run(dsn: str) -> tuple[int, str]:
        # Creating an account needs the schema: apply pending migrations first, as serve does.
        await apply_migrations(dsn)
        conn = await connect_or_explain(dsn)
        try:
            async with conn.transaction():
                return await create_account(conn, name)
        finally:
            await conn.close()

    account_id, key = _with_database(settings, run)
    if args.json:
        _print(json.dumps({"account_id": account_id, "api_key": key}))
    else:
        _print(f"account {account_id} created: {name}")
        _print(f"admin API key (shown once, store it now): {key}")
    return 0


def cmd_retention_run(settings: Settings, args: argparse.Namespace) -> int:
    from inbox.db import create_pool
    from inbox.retention import run_retention

    async def run(dsn: str) -> Any:
        conn = await connect_or_explain(dsn)
        await conn.close()
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            return await run_retention(pool, dry_run=args.dry_run, media_root=settings.media_dir)
        finally:
            await pool.close()

    report = _with_database(settings, run)
    if args.json:
        _print(json.dumps(report.as_dict()))
    else:
        for line in report.lines():
            _print(line)
    return 0


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.replay import replay
    from inbox.db import create_pool

    async def run(dsn: str) -> list[Any]:
        conn = await connect_or_explain(dsn)
        await conn.close()
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            return await replay(pool, account_id=args.account, ids=args.ids or None)
        finally:
            await pool.close()

    results = _with_database(settings, run)
    by_status: dict[str, int] = {}
    for result in results:
        key = str(result.status) if result.status is not None else "duplicate"
        by_status[key] = by_status.get(key, 0) + 1
    if args.json:
        _print(json.dumps({"replayed": len(results), "by_status": by_status}))
        return 0
    if not results:
        _print("no dead letters to replay")
        return 0
    summary = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))
    _print(f"replayed {len(results)} dead letters: {summary}")
    still = by_status.get("failed", 0)
    if still:
        _print(f"{still} still failed; see GET /api/v1/inbound?status=failed")
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.demo import demo

    try:
        demo(settings, interval=args.interval)
    except SystemExit as exc:  # uvicorn exits when it cannot bind or the app fails to start
        code = exc.code if isinstance(exc.code, int) else 1
        if code:
            raise CliError("the demo failed to start (see the log above)", code) from exc
    return 0


def cmd_secrets_rotate(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.secret_box import box_for
    from gateway.secret_rotation import UnreadableChannels, rotate_all

    box = box_for(settings)

    async def run(dsn: str) -> Any:
        await apply_migrations(dsn)  # the sealed column comes with migration 0003
        conn = await connect_or_explain(dsn)
        try:
            return await rotate_all(conn, box)
        finally:
            await conn.close()

    try:
        report = _with_database(settings, run)
    except UnreadableChannels as exc:
        raise CliError(str(exc)) from exc
    _print(json.dumps(report.as_dict()) if args.json else report.line())
    return 0


def cmd_secrets_generate_key(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.secret_box import generate_key

    _print(generate_key())
    return 0


def with_secret_key(settings: Settings) -> Settings:
    """Settings whose GATEWAY_SECRET_KEY is resolved: the configured one, or (embedded database
    only) the data dir's generated key file. Raises SecretKeyError with one line otherwise."""
    from pydantic import SecretStr

    from gateway.secret_box import resolve_key

    key = settings.gateway_secret_key
    value = resolve_key(key.get_secret_value() if key is not None else None,
                        embedded=settings.database_url is None, data_dir=settings.gateway_data_dir)
    return settings.model_copy(update={"gateway_secret_key": SecretStr(value)})


# Commands that open channel secrets: they refuse to start without a usable key.
_NEEDS_SECRET_KEY = {"serve", "demo", "secrets"}


def _dispatch(args: argparse.Namespace) -> Callable[[Settings, argparse.Namespace], int]:
    if args.verb == "secrets":
        return cmd_secrets_rotate if args.secrets_verb == "rotate" else cmd_secrets_generate_key
    if args.verb == "account":
        return cmd_account_create
    if args.verb == "retention":
        return cmd_retention_run
    commands: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
        "serve": cmd_serve,
        "migrate": cmd_migrate,
        "replay": cmd_replay,
        "demo": cmd_demo,
    }
    return commands[args.verb]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # exits 2 with usage on bad arguments
    log_redaction.install()
    try:
        settings = load_settings()
        if args.verb in _NEEDS_SECRET_KEY and getattr(args, "secrets_verb", None) != "generate-key":
            settings = with_secret_key(settings)
        return _dispatch(args)(settings, args)
    except (SettingsError, SecretKeyError) as exc:
        return _fail(str(exc), 2)
    except CliError as exc:
        return _fail(str(exc), exc.code)
    except (DatabaseUnreachable, EmbeddedPostgresError, SecretsUnreadable, PortUnavailable) as exc:
        return _fail(str(exc), 1)
    except MigrationError as exc:
        return _fail(f"migration refused: {exc}", 1)
    except asyncpg.PostgresError as exc:
        return _fail(f"database error: {type(exc).__name__}: {exc}", 1)
    except KeyboardInterrupt:
        return 130


def _fail(message: str, code: int) -> int:
    one_line = " ".join(message.split())
    print(f"{PROG}: {one_line}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
