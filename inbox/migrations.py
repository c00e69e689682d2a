"""Forward-only raw SQL migrations.

Files ``sql/NNNN_name.sql`` are applied in order, each in its own transaction,
while one session holds ``pg_advisory_lock`` so concurrent runners apply each
file exactly once. ``schema_migrations`` records a sha256 per file; an applied
file whose checksum changed, an applied version with no file, two files with one
version or a database newer than the code are hard errors.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from inbox.errors import MigrationError

# Arbitrary constant shared by every gateway process: "inbox-gateway migrations".
MIGRATION_LOCK_ID = 0x1B0C_6A7E_0001
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationStatus:
    version: int
    name: str
    applied_at: datetime | None


def migrations_dir() -> Path:
    # Installed wheel: shipped as inbox/sql; source checkout: the repo's sql/.
    packaged = Path(__file__).resolve().parent / "sql"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[1] / "sql"


def load_migrations(directory: Path | None = None) -> list[Migration]:
    directory = directory or migrations_dir()
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_RE.match(path.name)
        if not match:
            raise MigrationError(f"bad migration file name {path.name!r} (want NNNN_name.sql)")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migration files with version {version:04d}")
        found[version] = Migration(version, match.group(2), path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


async def _applied(conn: asyncpg.Connection) -> dict[int, asyncpg.Record]:
    rows = await conn.fetch("SELECT version, name, checksum, applied_at FROM schema_migrations")
    return {r["version"]: r for r in rows}


def _check(known: list[Migration], applied: dict[int, asyncpg.Record]) -> list[Migration]:
    by_version = {m.version: m for m in known}
    for version, row in applied.items():
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"database has migration {version:04d}_{row['name']} that this code does not know"
                " (database newer than the code, or a file was removed)"
            )
        if migration.checksum != row["checksum"]:
            raise MigrationError(
                f"migration {version:04d}_{migration.name}.sql changed after it was applied;"
                " never edit an applied migration, add a new one"
            )
    return [m for m in known if m.version not in applied]


async def status(conn: asyncpg.Connection, directory: Path | None = None) -> list[MigrationStatus]:
    known = load_migrations(directory)
    await conn.execute(_CREATE_TABLE)
    applied = await _applied(conn)
    _check(known, applied)
    return [
        MigrationStatus(m.version, m.name, applied[m.version]["applied_at"] if m.version in applied else None)
        for m in known
    ]


async def migrate(
    conn: asyncpg.Connection, directory: Path | None = None, *, dry_run: bool = False
) -> list[Migration]:
    """Apply pending migrations; return those applied (or that would be, with ``dry_run``)."""
    known = load_migrations(directory)
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(_CREATE_TABLE)
        pending = _check(known, await _applied(conn))
        if dry_run:
            return pending
        for migration in pending:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
        return pending
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
