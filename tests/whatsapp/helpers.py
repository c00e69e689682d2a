"""WhatsApp channels in a test database, and signed webhook posts over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from channels.whatsapp.verify import SIGNATURE_HEADER, sign
from inbox.accounts import create_account
from tests.sealed import seal

APP_SECRET = "fixture_app_secret_do_not_use"  # tests/fixtures/whatsapp/signed/README.txt
VERIFY_TOKEN = "my-verify-token"
ACCESS_TOKEN = "EAAG-test-token"
PHONE_NUMBER_ID = "110987654321098"

# Tables whose row counts must not move when a request is refused.
TABLES = ("inbound_events", "messages", "contacts", "contact_identities", "conversations", "events",
          "media_files", "pending_updates")


@dataclass
class WaChannel:
    account_id: int
    api_key: str
    channel_id: int
    phone_number_id: str


async def make_whatsapp_channel(pool: asyncpg.Pool, *, phone_number_id: str = PHONE_NUMBER_ID,
                                account: tuple[int, str] | None = None, app_secret: str = APP_SECRET,
                                name: str = "acme") -> WaChannel:
    account_id, api_key = account or await create_account(pool, name)
    channel_id = await pool.fetchval(
        """INSERT INTO channels (account_id, type, name, config, secrets_enc, provider_key)
           VALUES ($1, 'whatsapp', $2, $3, $4, $5) RETURNING id""",
        account_id,
        f"WhatsApp {phone_number_id}",
        {"phone_number_id": phone_number_id},
        seal({"access_token": ACCESS_TOKEN, "app_secret": app_secret, "verify_token": VERIFY_TOKEN}),
        phone_number_id,
    )
    return WaChannel(account_id, api_key, channel_id, phone_number_id)


def compact(data: Any) -> bytes:
    """Serialised the way WhatsApp does: compact, ASCII-only with \\u escapes."""
    return json.dumps(data, separators=(",", ":")).encode()


async def post_signed(http: httpx.AsyncClient, channel_id: int, body: bytes | Any,
                      secret: str = APP_SECRET) -> httpx.Response:
    raw = body if isinstance(body, bytes) else compact(body)
    return await http.post(f"/webhooks/whatsapp/{channel_id}", content=raw,
                           headers={SIGNATURE_HEADER: sign(raw, secret), "Content-Type": "application/json"})


async def row_counts(pool: asyncpg.Pool) -> dict[str, int]:
    return {t: await pool.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}


async def message_by_external_id(pool: asyncpg.Pool, external_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM messages WHERE external_id = $1", external_id)


async def eventually(check: Callable[[], Awaitable[Any]], *, within: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy (background workers act asynchronously)."""
    async with asyncio.timeout(within):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.02)


def echo(wamid: str, text: str, *, to: str = "4915112345678", to_user_id: str | None = "DE.2384756109283746",
         timestamp: str = "1741952060", phone_number_id: str = PHONE_NUMBER_ID) -> dict:
    """A business-side send as WhatsApp echoes it (field smb_message_echoes)."""
    msg = {"from": "15550109876", "to": to, "id": wamid, "timestamp": timestamp, "type": "text",
           "text": {"body": text}}
    if to_user_id:
        msg["to_user_id"] = to_user_id
    return {"object": "whatsapp_business_account", "entry": [{"id": "209876543210987", "changes": [{
        "field": "smb_message_echoes",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550109876", "phone_number_id": phone_number_id},
                  "message_echoes": [msg]}}]}]}
