"""The ``inbox-gateway`` command, run as a subprocess against a real PostgreSQL."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

import pytest

from inbox.accounts import authenticate
from schema.enums import ApiKeyRole
from tests.cli_helpers import run_cli


async def test_account_create_json_prints_one_line_with_a_key_that_authenticates(db_url, pool):
    done = await run_cli("account", "create", "Acme Support", "--json", DATABASE_URL=db_url)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    body = json.loads(lines[0])
    assert set(body) == {"account_id", "api_key"}
    principal = await authenticate(pool, body["api_key"])
    assert principal is not None
    assert principal.account_id == body["account_id"]
    assert principal.role == ApiKeyRole.ADMIN
    assert await pool.fetchval("SELECT name FROM accounts WHERE id = $1", body["account_id"]) == "Acme Support"


async def test_account_create_prints_the_id_and_key_for_humans(db_url, pool):
    done = await run_cli("account", "create", "acme", DATABASE_URL=db_url)

    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    account_id = int(first.split()[1])
    assert first == f"account {account_id} created: acme"
    key = second.rsplit(" ", 1)[1]
    principal = await authenticate(pool, key)
    assert principal is not None and principal.account_id == account_id


async def test_account_create_migrates_an_empty_database_first(empty_db_url):
    done = await run_cli("account", "create", "first", "--json", DATABASE_URL=empty_db_url)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["account_id"] >= 1


async def test_an_empty_account_name_is_refused(db_url):
    done = await run_cli("account", "create", "  ", DATABASE_URL=db_url)

    assert done.returncode == 2
    assert done.stderr == "inbox-gateway: account name must not be empty\n"


@pytest.mark.parametrize(
    ("verb", "setting", "value", "name"),
    [
        (["migrate"], "GATEWAY_PORT", "abc", "GATEWAY_PORT"),
        (["migrate"], "GATEWAY_PORT", "70000", "GATEWAY_PORT"),
        (["migrate"], "DATABASE_URL", "mysql://x", "DATABASE_URL"),
        (["migrate"], "REDIS_URL", "http://localhost", "REDIS_URL"),
        (["serve"], "GATEWAY_PORT", "abc", "GATEWAY_PORT"),
        (["serve"], "GATEWAY_LOG_LEVEL", "loud", "GATEWAY_LOG_LEVEL"),
        (["account", "create", "x"], "DATABASE_URL", "mysql://x", "DATABASE_URL"),
    ],
)
async def test_a_wrong_setting_fails_with_one_line_and_exit_code_2(verb, setting, value, name):
    done = await run_cli(*verb, **{setting: value})

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"inbox-gateway: invalid setting {name}: ")
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


async def test_an_unreachable_database_fails_with_one_line_and_exit_code_1():
    done = await run_cli("migrate", DATABASE_URL="postgresql://postgres:secret@127.0.0.1:1/nowhere")

    assert done.returncode == 1
    assert done.stderr.startswith("inbox-gateway: cannot connect to the database postgres@127.0.0.1:1/nowhere: ")
    assert "secret" not in done.stderr
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


async def test_a_missing_database_fails_with_one_line_and_exit_code_1(db_url):
    missing = db_url.rsplit("/", 1)[0] + "/igw_no_such_database"

    done = await run_cli("account", "create", "x", DATABASE_URL=missing)

    assert done.returncode == 1
    assert "cannot connect to the database" in done.stderr
    assert "igw_no_such_database" in done.stderr
    assert done.stderr.count("\n") == 1


async def test_unknown_arguments_print_usage_and_exit_2():
    done = await run_cli("frobnicate")

    assert done.returncode == 2
    assert "usage: inbox-gateway" in done.stderr


async def test_help_lists_every_verb():
    done = await run_cli("--help")

    assert done.returncode == 0
    for verb in ("serve", "migrate", "account", "retention", "replay", "demo"):
        assert verb in done.stdout


async def test_retention_dry_run_reports_and_keeps_the_rows(db_url, pool):
    account_id = await pool.fetchval("INSERT INTO accounts (name) VALUES ('a') RETURNING id")
    channel_id = await pool.fetchval(
        "INSERT INTO channels (account_id, type, name) VALUES ($1, 'telegram', 'bot') RETURNING id", account_id
    )
    await pool.execute(
        "INSERT INTO inbound_events (account_id, channel_id, status, error, payload, received_at) "
        "VALUES ($1, $2, 'failed', 'boom', '{}', $3)",
        account_id, channel_id, datetime.now(UTC) - timedelta(days=100),
    )

    dry = await run_cli("retention", "run", "--dry-run", DATABASE_URL=db_url)

    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        f"account {account_id}: would delete 1 dead_letters",
        "dry run: nothing was changed",
    ]
    assert await pool.fetchval("SELECT count(*) FROM inbound_events") == 1

    real = await run_cli("retention", "run", "--json", DATABASE_URL=db_url)

    assert real.returncode == 0, real.stderr
    report = json.loads(real.stdout)
    assert report["dry_run"] is False
    assert report["totals"]["deleted"]["dead_letters"] == 1
    assert await pool.fetchval("SELECT count(*) FROM inbound_events") == 0


async def test_replay_with_nothing_dead_lettered_says_so(db_url):
    done = await run_cli("replay", DATABASE_URL=db_url)

    assert done.returncode == 0, done.stderr
    assert done.stdout == "no dead letters to replay\n"


async def test_an_unusable_data_dir_fails_with_one_line_and_exit_code_1(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    done = await run_cli("migrate", GATEWAY_DATA_DIR=str(blocker / "data"))

    assert done.returncode == 1
    assert done.stderr.startswith("inbox-gateway: cannot create the data directory")
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize("verb", ["serve", "demo"])
async def test_a_busy_port_is_one_line_and_exit_code_1(verb, db_url):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        done = await run_cli(verb, DATABASE_URL=db_url, GATEWAY_PORT=str(port))
    finally:
        busy.close()
    assert done.returncode == 1
    assert done.stderr.strip() == f"inbox-gateway: cannot listen on 127.0.0.1:{port}: Address already in use"
