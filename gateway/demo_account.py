"""The demo's one account, found again on every run.

The account is the one named :data:`DEMO_ACCOUNT` (the oldest, should there be
several); its WhatsApp, Telegram and Asterisk channels are found by the
provider identity the demo plays and updated in place, so their ids, conversations and open inbox tabs
survive a rerun. Keys are stored hashed, so an earlier run's key cannot be
shown again: each run adds a fresh admin key and prints it. Earlier runs' keys
stay valid (an open tab keeps working) until more than :data:`KEPT_RUN_KEYS`
newer ones exist.

The channel secrets (webhook signing secrets, the PBX's AMI secret) are new on
each run: only this process plays the providers, so nobody else holds them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from gateway.demo_providers import BOT_ID, PHONE_NUMBER_ID, WA_ACCESS_TOKEN, DemoState
from gateway.secret_box import SecretBox
from inbox.accounts import create_api_key
from schema.enums import ApiKeyRole

DEMO_ACCOUNT = "inbox-gateway demo"
RUN_KEY_NAME = "demo run"
KEPT_RUN_KEYS = 10
AMI_PATTERN = "127.0.0.1:%:demo"


@dataclass(frozen=True)
class DemoAccount:
    id: int
    key: str
    created: bool  # False: an earlier run's account, reused


@dataclass(frozen=True)
class _Channel:
    type: str
    name: str
    config: dict[str, Any]
    secrets: dict[str, Any]
    provider_key: str
    provider_pattern: str  # LIKE pattern matching this channel's provider_key on every run


def _channels(state: DemoState, pbx_port: int) -> list[_Channel]:
    return [
        _Channel("whatsapp", "WhatsApp (demo)", {"phone_number_id": PHONE_NUMBER_ID},
                 {"access_token": WA_ACCESS_TOKEN, "app_secret": state.app_secret, "verify_token": "demo"},
                 PHONE_NUMBER_ID, PHONE_NUMBER_ID),
        _Channel("telegram", "Telegram (demo)", {"mode": "webhook", "bot_id": BOT_ID, "bot_username": "inbox_demo_bot"},
                 {"bot_token": f"{BOT_ID}:demo", "webhook_secret": state.tg_secret}, str(BOT_ID), str(BOT_ID)),
        _Channel("asterisk", "Asterisk (demo PBX)",
                 {"host": "127.0.0.1", "port": pbx_port, "username": "demo", "inbound_contexts": ["from-carrier"],
                  "agent_pattern": r"PJSIP/1\d{3}"},
                 {"secret": state.ami_secret}, f"127.0.0.1:{pbx_port}:demo", AMI_PATTERN),
    ]


async def open_demo_account(conn: asyncpg.Connection, state: DemoState, pbx_port: int,
                            box: SecretBox) -> DemoAccount:
    """Find or create the demo account and its channels (ids into ``state``); a fresh key for this run."""
    async with conn.transaction():
        # Two demos started at once on one database would otherwise both create the account.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", DEMO_ACCOUNT)
        account_id = await conn.fetchval("SELECT id FROM accounts WHERE name = $1 ORDER BY id LIMIT 1", DEMO_ACCOUNT)
        created = account_id is None
        if created:
            account_id = await conn.fetchval("INSERT INTO accounts (name) VALUES ($1) RETURNING id", DEMO_ACCOUNT)
        # Demo runs from before the account was reused left their own accounts holding these identities.
        await conn.execute(
            """UPDATE channels SET deleted_at = now()
               WHERE deleted_at IS NULL AND account_id <> $1
                 AND ((type = 'whatsapp' AND provider_key = $2) OR (type = 'telegram' AND provider_key = $3)
                      OR (type = 'asterisk' AND provider_key LIKE $4))""",
            account_id, PHONE_NUMBER_ID, str(BOT_ID), AMI_PATTERN)
        ids = {}
        for ch in _channels(state, pbx_port):
            sealed = box.seal(ch.secrets)
            # Found by the provider identity the demo plays (the PBX's port changes every run),
            # so a channel renamed in the inbox is still the one reused.
            channel_id = await conn.fetchval(
                """UPDATE channels SET config = $3, secrets_enc = $4, provider_key = $5, updated_at = now()
                   WHERE id = (SELECT id FROM channels WHERE account_id = $1 AND type = $2 AND deleted_at IS NULL
                               AND provider_key LIKE $6 ORDER BY id LIMIT 1)
                   RETURNING id""",
                account_id, ch.type, ch.config, sealed, ch.provider_key, ch.provider_pattern)
            if channel_id is None:
                channel_id = await conn.fetchval(
                    """INSERT INTO channels (account_id, type, name, config, secrets_enc, provider_key)
                       VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
                    account_id, ch.type, ch.name, ch.config, sealed, ch.provider_key)
            ids[ch.type] = channel_id
        state.wa_channel, state.tg_channel = ids["whatsapp"], ids["telegram"]
        key = await create_api_key(conn, account_id, ApiKeyRole.ADMIN,
                                   name=f"{RUN_KEY_NAME} {time.strftime('%Y-%m-%d %H:%M:%S')}")
        await conn.execute(
            """UPDATE api_keys SET revoked_at = now()
               WHERE id IN (SELECT id FROM api_keys WHERE account_id = $1 AND name LIKE $2 || ' %'
                            AND revoked_at IS NULL ORDER BY id DESC OFFSET $3)""",
            account_id, RUN_KEY_NAME, KEPT_RUN_KEYS)
    return DemoAccount(id=account_id, key=key, created=created)
