"""Channel secrets at rest: sealed under GATEWAY_SECRET_KEY, never in a dump, rotatable."""

from __future__ import annotations

import asyncio
import json
import shutil
import stat

import pytest

from gateway.secret_box import SecretBox, SecretKeyError, generate_key, resolve_key
from gateway.secret_rotation import rotate_all
from inbox.db import connect
from schema.enums import ChannelType
from tests.api.conftest import SetupCalls
from tests.api.helpers import make_account
from tests.cli_helpers import run_cli
from tests.sealed import TEST_SECRET_KEY, open_sealed, seal
from tests.server import run_server

WA = {"access_token": "EAAG-wa-access-token-7f3a", "app_secret": "wa-app-secret-91c2", "verify_token": "wa-verify-5d10"}
TG = {"bot_token": "424242:AAH-tg-bot-token-b7e4", "webhook_secret": "tg-hook-secret-0a9f"}
AMI = {"secret": "ami-password-c3d8"}
LEGACY = {"access_token": "EAAG-legacy-plaintext-e612", "app_secret": "legacy-app-secret-44aa"}
SECRET_VALUES = [*WA.values(), *TG.values(), *AMI.values(), *LEGACY.values()]


def _channels() -> list[dict]:
    return [
        {"type": "whatsapp", "name": "wa", "config": {"phone_number_id": "5550101"}, "secrets": WA},
        {"type": "telegram", "name": "tg", "config": {"mode": "webhook"}, "secrets": TG},
        # An unreachable PBX is accepted (the runner keeps trying): no AMI server needed here.
        {"type": "asterisk", "name": "pbx", "secrets": AMI,
         "config": {"host": "127.0.0.1", "port": 9, "username": "gateway", "inbound_contexts": ["from-trunk"],
                    "agent_pattern": r"PJSIP/1\d{3}"}},
    ]


async def _pg_dump(db_url: str) -> str:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump is not installed")
    proc = await asyncio.create_subprocess_exec(
        pg_dump, "--no-owner", "--inserts", db_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_a_pg_dump_holds_no_secret_value_of_any_channel_type(db_url, pool):
    account_id, key = await make_account(pool, "dumped")
    # A channel stored before migration 0003, in plaintext: sealed when the gateway starts.
    legacy_id = await pool.fetchval(
        """INSERT INTO channels (account_id, type, name, config, secrets_plaintext, provider_key)
           VALUES ($1, 'whatsapp', 'old', '{"phone_number_id": "5550999"}', $2, '5550999') RETURNING id""",
        account_id, LEGACY)
    async with run_server(db_url, gateway_workers=False,
                          setup_hooks={ChannelType.TELEGRAM: SetupCalls()}) as server, server.client(key) as http:
        for body in _channels():
            r = await http.post("/api/v1/channels", json=body)
            assert r.status_code == 201, r.text
            assert sorted(r.json()["secrets_set"]) == sorted(body["secrets"])
        deleted = (await http.post("/api/v1/channels", json={**_channels()[0], "config": {"phone_number_id": "1"}}))
        assert (await http.delete(f"/api/v1/channels/{deleted.json()['id']}")).status_code == 204
        legacy = await http.get(f"/api/v1/channels/{legacy_id}")
        assert legacy.json()["secrets_set"] == sorted(LEGACY)

    dump = await _pg_dump(db_url)

    assert "secrets_enc" in dump and "INSERT INTO public.channels" in dump
    leaked = [v for v in SECRET_VALUES if v in dump]
    assert leaked == []
    rows = await pool.fetch("SELECT type, secrets_enc, secrets_plaintext FROM channels ORDER BY id")
    assert len(rows) == 5 and all(r["secrets_plaintext"] == {} for r in rows)
    assert {r["type"]: open_sealed(r["secrets_enc"]) for r in rows[1:4]} == {
        "whatsapp": WA, "telegram": TG, "asterisk": AMI}
    assert open_sealed(rows[0]["secrets_enc"]) == LEGACY


async def test_the_webhook_of_a_sealed_channel_still_verifies_with_its_secret(db_url, pool):
    account_id, _ = await make_account(pool, "hooks")
    channel_id = await pool.fetchval(
        """INSERT INTO channels (account_id, type, name, config, secrets_enc, provider_key)
           VALUES ($1, 'whatsapp', 'wa', '{"phone_number_id": "5550101"}', $2, '5550101') RETURNING id""",
        account_id, seal(WA))
    async with run_server(db_url, gateway_workers=False) as server, server.client() as http:
        ok = await http.get(f"/webhooks/whatsapp/{channel_id}", params={
            "hub.mode": "subscribe", "hub.verify_token": WA["verify_token"], "hub.challenge": "42"})
        wrong = await http.get(f"/webhooks/whatsapp/{channel_id}", params={
            "hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "42"})
    assert (ok.status_code, ok.text) == (200, "42")
    assert wrong.status_code == 403


@pytest.mark.parametrize("verb", [["serve"], ["demo"], ["secrets", "rotate"]])
async def test_with_database_url_and_no_key_a_command_refuses_with_one_line_and_exit_2(db_url, verb):
    done = await run_cli(*verb, DATABASE_URL=db_url, GATEWAY_SECRET_KEY="")

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "GATEWAY_SECRET_KEY is required" in done.stderr
    assert "Traceback" not in done.stderr


async def test_a_malformed_key_is_refused_without_being_echoed(db_url):
    done = await run_cli("serve", DATABASE_URL=db_url, GATEWAY_SECRET_KEY=f"{generate_key()},notakey-S3CR3T")

    assert done.returncode == 2
    assert "key 2 is not a Fernet key" in done.stderr and "S3CR3T" not in done.stderr


async def test_serve_refuses_a_key_that_opens_none_of_the_stored_secrets(db_url, pool):
    account_id, _ = await make_account(pool, "locked")
    await pool.execute("INSERT INTO channels (account_id, type, name, secrets_enc) VALUES ($1, 'telegram', 't', $2)",
                       account_id, seal(TG))

    done = await run_cli("serve", DATABASE_URL=db_url, GATEWAY_SECRET_KEY=generate_key(), GATEWAY_PORT="0")

    assert done.returncode == 1
    assert "GATEWAY_SECRET_KEY opens none of the stored channel secrets" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_database_url_a_key_is_generated_once_into_the_data_dir_readable_by_the_owner_only(tmp_path):
    first = resolve_key(None, embedded=True, data_dir=tmp_path / "data")
    again = resolve_key(None, embedded=True, data_dir=tmp_path / "data")

    assert first == again
    SecretBox.from_setting(first)  # a usable key
    mode = stat.S_IMODE((tmp_path / "data" / "secret.key").stat().st_mode)
    assert mode == 0o600
    with pytest.raises(SecretKeyError, match="required when DATABASE_URL is set"):
        resolve_key(None, embedded=False, data_dir=tmp_path / "other")
    assert not (tmp_path / "other").exists()


async def _sealed_rows(pool) -> list[str]:
    return [r["secrets_enc"] for r in await pool.fetch("SELECT secrets_enc FROM channels ORDER BY id")]


async def test_secrets_rotate_reseals_every_channel_under_the_first_key_and_is_idempotent(db_url, pool):
    account_id, _ = await make_account(pool, "rotating")
    for n, secrets in enumerate([WA, TG, AMI]):
        await pool.execute("INSERT INTO channels (account_id, type, name, secrets_enc) VALUES ($1, 'whatsapp', $2, $3)",
                           account_id, f"c{n}", seal(secrets))
    await pool.execute("INSERT INTO channels (account_id, type, name) VALUES ($1, 'asterisk', 'no secrets')",
                       account_id)
    await pool.execute("INSERT INTO channels (account_id, type, name, secrets_plaintext) VALUES ($1, 'telegram', "
                       "'legacy', $2)", account_id, LEGACY)
    new_key = generate_key()
    both = f"{new_key},{TEST_SECRET_KEY}"

    first = await run_cli("secrets", "rotate", "--json", DATABASE_URL=db_url, GATEWAY_SECRET_KEY=both)
    after_first = await _sealed_rows(pool)
    second = await run_cli("secrets", "rotate", "--json", DATABASE_URL=db_url, GATEWAY_SECRET_KEY=both)

    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"channels": 5, "rotated": 3, "current": 1, "sealed": 1}
    assert json.loads(second.stdout) == {"channels": 5, "rotated": 0, "current": 5, "sealed": 0}
    assert await _sealed_rows(pool) == after_first  # nothing rewritten the second time
    only_new = SecretBox.from_setting(new_key)
    assert [only_new.open(s) for s in after_first] == [WA, TG, AMI, {}, LEGACY]


async def test_a_rotation_with_a_key_that_opens_nothing_changes_nothing(db_url, pool):
    account_id, _ = await make_account(pool, "stuck")
    await pool.execute("INSERT INTO channels (account_id, type, name, secrets_enc) VALUES ($1, 'whatsapp', 'w', $2)",
                       account_id, seal(WA))
    await pool.execute("INSERT INTO channels (account_id, type, name, secrets_plaintext) VALUES ($1, 'telegram', "
                       "'legacy', $2)", account_id, LEGACY)
    before = await pool.fetch("SELECT secrets_enc, secrets_plaintext FROM channels ORDER BY id")

    done = await run_cli("secrets", "rotate", DATABASE_URL=db_url, GATEWAY_SECRET_KEY=generate_key())

    assert done.returncode == 1
    assert "open under none of the keys" in done.stderr and "Nothing was changed" in done.stderr
    assert await pool.fetch("SELECT secrets_enc, secrets_plaintext FROM channels ORDER BY id") == before


async def test_rotate_all_prints_a_readable_report(db_url, pool):
    account_id, _ = await make_account(pool, "report")
    await pool.execute("INSERT INTO channels (account_id, type, name, secrets_enc) VALUES ($1, 'whatsapp', 'w', $2)",
                       account_id, seal(WA))
    conn = await connect(db_url)
    try:
        report = await rotate_all(conn, SecretBox.from_setting(TEST_SECRET_KEY))
    finally:
        await conn.close()
    assert report.line() == "1 channels: 0 re-encrypted under the first key, 1 already current, 0 plaintext sealed"


async def test_generate_key_prints_a_usable_key_and_needs_no_setting():
    done = await run_cli("secrets", "generate-key", GATEWAY_SECRET_KEY="", DATABASE_URL="postgresql://nowhere/x")

    assert done.returncode == 0, done.stderr
    SecretBox.from_setting(done.stdout.strip())


async def test_a_channel_whose_secrets_no_key_opens_answers_503_not_500(db_url, pool):
    account_id, _ = await make_account(pool, "foreign")
    async with run_server(db_url, gateway_workers=False) as server, server.client() as http:
        channel_id = await pool.fetchval(
            """INSERT INTO channels (account_id, type, name, config, secrets_enc, provider_key)
               VALUES ($1, 'whatsapp', 'wa', '{"phone_number_id": "5550102"}', $2, '5550102') RETURNING id""",
            account_id, SecretBox.from_setting(generate_key()).seal(WA))
        r = await http.get(f"/webhooks/whatsapp/{channel_id}", params={
            "hub.mode": "subscribe", "hub.verify_token": WA["verify_token"], "hub.challenge": "42"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "channel_secrets_unreadable"
