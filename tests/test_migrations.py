"""The migration runner and the ``migrate`` command against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import shutil

import asyncpg
import pytest

from inbox.errors import MigrationError
from inbox.migrations import load_migrations, migrate, migrations_dir, status
from tests.cli_helpers import run_cli


@pytest.fixture
async def empty_conn(empty_db_url):
    conn = await asyncpg.connect(empty_db_url)
    yield conn
    await conn.close()


@pytest.fixture
def sql_copy(tmp_path):
    """A private copy of sql/ that a test may edit."""
    target = tmp_path / "sql"
    shutil.copytree(migrations_dir(), target)
    return target


async def _recorded(conn):
    return [dict(r) for r in await conn.fetch("SELECT version, name, checksum, applied_at FROM schema_migrations "
                                              "ORDER BY version")]


async def test_a_fresh_database_gets_every_migration_recorded_with_its_checksum(empty_conn):
    applied = await migrate(empty_conn)

    files = sorted(migrations_dir().glob("*.sql"))
    assert [f"{m.version:04d}_{m.name}.sql" for m in applied] == [f.name for f in files]
    rows = await _recorded(empty_conn)
    assert [(r["version"], r["name"]) for r in rows] == [(m.version, m.name) for m in applied]
    for row, path in zip(rows, files, strict=True):
        assert row["checksum"] == hashlib.sha256(path.read_text(encoding="utf-8").encode()).hexdigest()
    assert await empty_conn.fetchval("SELECT to_regclass('messages') IS NOT NULL")


async def test_a_second_run_changes_nothing(empty_conn):
    await migrate(empty_conn)
    before = await _recorded(empty_conn)

    assert await migrate(empty_conn) == []
    assert await _recorded(empty_conn) == before


async def test_an_edited_applied_migration_is_refused_with_a_clear_error(empty_conn, sql_copy):
    await migrate(empty_conn, sql_copy)
    first = sorted(sql_copy.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after it was applied\n")

    with pytest.raises(MigrationError, match=rf"{first.name} changed after it was applied"):
        await migrate(empty_conn, sql_copy)
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await status(empty_conn, sql_copy)


async def test_the_migrate_command_exits_nonzero_on_an_edited_migration(empty_db_url, sql_copy):
    ok = await run_cli("migrate", DATABASE_URL=empty_db_url, GATEWAY_MIGRATIONS_DIR=str(sql_copy))
    assert ok.returncode == 0, ok.stderr
    first = sorted(sql_copy.glob("*.sql"))[0]
    first.write_text(first.read_text().replace("CREATE TABLE", "create table", 1))

    refused = await run_cli("migrate", DATABASE_URL=empty_db_url, GATEWAY_MIGRATIONS_DIR=str(sql_copy))

    assert refused.returncode == 1
    assert refused.stderr.startswith("inbox-gateway: migration refused:")
    assert f"{first.name} changed after it was applied" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert "Traceback" not in refused.stderr


async def test_a_migration_the_code_does_not_know_is_refused(empty_conn, sql_copy):
    await migrate(empty_conn, sql_copy)
    last = sorted(sql_copy.glob("*.sql"))[-1]
    last.unlink()

    with pytest.raises(MigrationError, match="does not know"):
        await migrate(empty_conn, sql_copy)


async def test_a_new_migration_file_is_applied_on_the_next_run(empty_conn, sql_copy):
    await migrate(empty_conn, sql_copy)
    next_version = load_migrations(sql_copy)[-1].version + 1
    (sql_copy / f"{next_version:04d}_later.sql").write_text("CREATE TABLE later_thing (id int);\n")

    applied = await migrate(empty_conn, sql_copy)

    assert [(m.version, m.name) for m in applied] == [(next_version, "later")]
    assert await empty_conn.fetchval("SELECT to_regclass('later_thing') IS NOT NULL")


async def test_a_failing_migration_leaves_nothing_of_itself_behind(empty_conn, sql_copy):
    await migrate(empty_conn, sql_copy)
    next_version = load_migrations(sql_copy)[-1].version + 1
    (sql_copy / f"{next_version:04d}_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n"
    )

    with pytest.raises(asyncpg.PostgresError):
        await migrate(empty_conn, sql_copy)

    assert await empty_conn.fetchval("SELECT to_regclass('half_done') IS NULL")
    assert next_version not in [r["version"] for r in await _recorded(empty_conn)]


async def test_concurrent_migrate_processes_apply_each_file_exactly_once(empty_db_url):
    # Each process prints the files it applied: across all of them every file
    # appears once, and none failed on a table another one had just created.
    results = await asyncio.gather(*(run_cli("migrate", DATABASE_URL=empty_db_url) for _ in range(3)))

    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    applied_lines = [line for r in results for line in r.stdout.splitlines() if line.startswith("applied ")]
    files = load_migrations()
    assert sorted(applied_lines) == sorted(f"applied {m.version:04d}_{m.name}" for m in files)
    conn = await asyncpg.connect(empty_db_url)
    try:
        rows = await _recorded(conn)
    finally:
        await conn.close()
    assert [r["version"] for r in rows] == [m.version for m in files]


async def test_status_lists_pending_then_applied_migrations(empty_db_url):
    files = load_migrations()

    before = await run_cli("migrate", "--status", DATABASE_URL=empty_db_url)
    assert before.returncode == 0, before.stderr
    lines = before.stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == [f"{m.version:04d}_{m.name}" for m in files]
    assert all(line.split()[1] == "pending" for line in lines[:-1])
    assert lines[-1] == f"{len(files)} migrations, {len(files)} pending"

    await run_cli("migrate", DATABASE_URL=empty_db_url)
    after = await run_cli("migrate", "--status", DATABASE_URL=empty_db_url)
    lines = after.stdout.splitlines()
    assert all(line.split()[1] == "applied" for line in lines[:-1])
    assert lines[-1] == f"{len(files)} migrations, 0 pending"


async def test_dry_run_lists_what_would_be_applied_and_changes_nothing(empty_db_url):
    files = load_migrations()

    dry = await run_cli("migrate", "--dry-run", DATABASE_URL=empty_db_url)

    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        *(f"would apply {m.version:04d}_{m.name}" for m in files),
        f"{len(files)} pending; nothing was changed (dry run)",
    ]
    conn = await asyncpg.connect(empty_db_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('accounts') IS NULL")
        assert await _recorded(conn) == []
    finally:
        await conn.close()

    await run_cli("migrate", DATABASE_URL=empty_db_url)
    again = await run_cli("migrate", "--dry-run", DATABASE_URL=empty_db_url)
    assert again.stdout.splitlines() == ["database is up to date"]


async def test_whatsapp_contacts_keyed_on_a_user_id_get_their_wa_id_as_an_identity(empty_conn, sql_copy):
    later = [p for p in sql_copy.glob("*.sql") if int(p.name[:4]) >= 5]
    held = {p.name: p.read_text() for p in later}
    for p in later:
        p.unlink()
    await migrate(empty_conn, sql_copy)
    account = await empty_conn.fetchval("INSERT INTO accounts (name) VALUES ('acme') RETURNING id")
    contacts = {}
    for name, phone, identity in [("Lena", "+4915112345678", "DE.2384756109283746"),
                                  ("Tg group", None, "-1002143658709"), ("Caller", "+15551234567", None)]:
        contacts[name] = await empty_conn.fetchval(
            "INSERT INTO contacts (account_id, name, phone) VALUES ($1, $2, $3) RETURNING id", account, name, phone)
        if identity:
            kind = "telegram" if identity.startswith("-") else "whatsapp"
            await empty_conn.execute(
                """INSERT INTO contact_identities (account_id, contact_id, channel_type, external_id)
                   VALUES ($1, $2, $3, $4)""", account, contacts[name], kind, identity)
    for file_name, text in held.items():
        (sql_copy / file_name).write_text(text)
    await migrate(empty_conn, sql_copy)
    rows = await empty_conn.fetch("SELECT contact_id, channel_type, external_id FROM contact_identities ORDER BY id")
    assert [(r["contact_id"], r["channel_type"], r["external_id"]) for r in rows] == [
        (contacts["Lena"], "whatsapp", "DE.2384756109283746"),
        (contacts["Tg group"], "telegram", "-1002143658709"),
        (contacts["Lena"], "whatsapp", "4915112345678"),
    ]
