"""A running gateway with one tenant that owns a channel of each type, and what the suite needs around it:
signed webhook requests, a snapshot of every table to prove a refused request stored nothing."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from inbox.accounts import create_api_key
from schema.enums import ApiKeyRole
from tests.api.helpers import WA_SECRETS, inbound, make_account, make_channel
from tests.fakes.bot_api import FakeBotApi
from tests.redis_server import free_port
from tests.sealed import seal
from tests.security.tally import TALLY
from tests.server import RunningServer, run_server

TELEGRAM_SECRET = "hook-sekrit"
APP_SECRET = WA_SECRETS["app_secret"]
VERIFY_TOKEN = WA_SECRETS["verify_token"]
# Tables whose content (not only row count) must not change on a refused request.
WATCHED = ("accounts", "api_keys", "channels", "conversations", "messages", "contacts", "calls")


@dataclass
class World:
    server: RunningServer
    pool: asyncpg.Pool
    http: httpx.AsyncClient
    account_id: int
    admin_key: str
    agent_key: str
    whatsapp_channel: int
    telegram_channel: int
    asterisk_channel: int
    conversation_id: int

    def __repr__(self) -> str:
        return f"World({self.server.url})"

    async def request(self, method: str, url: str, *, body: bytes | None = None,
                      headers: dict[str, str] | None = None) -> httpx.Response:
        response = await self.http.request(method, url, content=body, headers=headers or {})
        TALLY.http(method, url, response.status_code)
        return response

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def whatsapp_headers(self, body: bytes) -> dict[str, str]:
        digest = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}

    def telegram_headers(self) -> dict[str, str]:
        return {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET, "Content-Type": "application/json"}


async def snapshot(pool: asyncpg.Pool) -> dict[str, Any]:
    """Row counts of every table, and the content of the watched ones."""
    tables = [r["table_name"] for r in await pool.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )]
    parts = [f'(SELECT count(*) FROM "{t}") AS "n_{t}"' for t in tables]
    parts += [f"(SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {t} x) AS \"c_{t}\""
              for t in WATCHED if t in tables]
    row = await pool.fetchrow("SELECT " + ", ".join(parts))
    assert row is not None
    return dict(row)


@contextlib.asynccontextmanager
async def running_world(db_url: str, pool: asyncpg.Pool, **settings: Any) -> AsyncIterator[World]:
    account_id, admin_key = await make_account(pool, "hostile")
    agent_key = await create_api_key(pool, account_id, ApiKeyRole.AGENT, name="agent")
    wa = await make_channel(pool, account_id, provider_key="1001", phone_number_id="1001")
    conversation_id = await inbound(pool, wa, external_id="wamid.hostile.1", contact="4915100000001")
    spare = await make_channel(pool, account_id, provider_key="3003", phone_number_id="3003")
    await pool.execute("UPDATE channels SET name = 'spare' WHERE id = $1", spare.id)
    tg = await pool.fetchval(
        """INSERT INTO channels (account_id, type, name, config, secrets_enc, provider_key)
           VALUES ($1, 'telegram', 'bot', $2, $3, '7012345678') RETURNING id""",
        account_id, {"mode": "webhook", "bot_id": 7012345678},
        seal({"bot_token": "7012345678:AAtest", "webhook_secret": TELEGRAM_SECRET}),
    )
    # A PBX nobody listens for (setup hooks get "connection refused" at once), marked as connected
    # so that click-to-call requests go as deep as the API allows.
    ast = await pool.fetchval(
        """INSERT INTO channels (account_id, type, name, config, secrets_enc, provider_key, state)
           VALUES ($1, 'asterisk', 'pbx', $2, $3, 'pbx', $4) RETURNING id""",
        account_id, {"host": "127.0.0.1", "port": free_port(), "username": "gw", "agent_pattern": r"PJSIP/\d+"},
        seal({"secret": "ami-sekrit"}), {"ami": {"status": "connected"}},
    )
    async with FakeBotApi().running() as bot_api, run_server(
        db_url, gateway_workers=False, telegram_api_base=bot_api.url, **settings
    ) as server, httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield World(server, pool, http, account_id, admin_key, agent_key, wa.id, tg, ast, conversation_id)
