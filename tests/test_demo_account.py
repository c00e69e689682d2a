"""The demo's account is found again on every run, whatever earlier runs and the user did to it."""

from __future__ import annotations

from gateway.demo_account import DEMO_ACCOUNT, open_demo_account
from gateway.demo_providers import PHONE_NUMBER_ID, DemoState
from gateway.secret_box import SecretBox
from inbox.accounts import authenticate, create_account
from inbox.db import connect
from tests.sealed import TEST_SECRET_KEY


async def test_a_rerun_reuses_the_account_and_its_channels_even_renamed_and_old_demo_accounts_let_go(db_url):
    box = SecretBox.from_setting(TEST_SECRET_KEY)
    conn = await connect(db_url)
    try:
        # A demo from before accounts were reused: its own account holds the demo's WhatsApp number.
        old_account, _ = await create_account(conn, "demo 2026-01-01 10:00")
        old_channel = await conn.fetchval(
            """INSERT INTO channels (account_id, type, name, provider_key)
               VALUES ($1, 'whatsapp', 'WhatsApp (demo)', $2) RETURNING id""", old_account, PHONE_NUMBER_ID)

        first = await open_demo_account(conn, state := DemoState(base="http://127.0.0.1:1"), 4001, box)
        ids = (state.wa_channel, state.tg_channel)
        assert first.created
        assert await conn.fetchval("SELECT deleted_at IS NOT NULL FROM channels WHERE id = $1", old_channel)

        await conn.execute("UPDATE channels SET name = 'Support WhatsApp' WHERE id = $1", state.wa_channel)
        second = await open_demo_account(conn, state := DemoState(base="http://127.0.0.1:1"), 4002, box)
        assert (second.id, second.created) == (first.id, False)
        assert (state.wa_channel, state.tg_channel) == ids
        live = await conn.fetch(
            "SELECT type, name, provider_key FROM channels WHERE account_id = $1 AND deleted_at IS NULL ORDER BY type",
            first.id)
        assert [tuple(r) for r in live] == [("asterisk", "Asterisk (demo PBX)", "127.0.0.1:4002:demo"),
                                            ("telegram", "Telegram (demo)", "7000001"),
                                            ("whatsapp", "Support WhatsApp", PHONE_NUMBER_ID)]
        # Keys are stored hashed: a fresh one per run, the earlier one still valid for open tabs.
        assert second.key != first.key
        for key in (first.key, second.key):
            principal = await authenticate(conn, key)
            assert principal is not None and principal.account_id == first.id
        assert await conn.fetchval("SELECT count(*) FROM accounts WHERE name = $1", DEMO_ACCOUNT) == 1
    finally:
        await conn.close()
