"""Test data for the API and outbound tests: accounts, channels and conversations
made through the real inbox functions (ingest for inbound traffic)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg

from gateway.broker import InProcessBroker
from gateway.config import load_settings
from gateway.context import AppContext
from inbox.accounts import create_account
from inbox.channels import ChannelRow, get_channel_any_account
from inbox.ingest import apply_events
from schema.enums import MessageType
from schema.events import ContactRef, InboundMessage
from schema.outbound import OutboundRequest, SendResult
from tests.sealed import seal

T0 = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
WA_SECRETS = {"access_token": "sekrit-token", "app_secret": "app-sekrit", "verify_token": "verify-sekrit"}


async def make_channel(pool: asyncpg.Pool, account_id: int, type_: str = "whatsapp",
                       provider_key: str | None = None, **config: Any) -> ChannelRow:
    channel_id = await pool.fetchval(
        """INSERT INTO channels (account_id, type, name, config, secrets_enc, provider_key)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
        account_id, type_, f"{type_} test", config, seal(WA_SECRETS), provider_key,
    )
    row = await get_channel_any_account(pool, channel_id)
    assert row is not None
    return row


async def make_account(pool: asyncpg.Pool, name: str = "acme") -> tuple[int, str]:
    return await create_account(pool, name)


async def inbound(pool: asyncpg.Pool, channel: ChannelRow, *, external_id: str, contact: str = "4915112345678",
                  name: str | None = "Lena", text: str = "hallo", at: datetime | None = None) -> int:
    """Apply one inbound text message through the real ingest; return its conversation id."""
    event = InboundMessage(
        external_id=external_id,
        contact=ContactRef(external_id=contact, name=name, phone="+" + contact),
        type=MessageType.TEXT,
        text=text,
        occurred_at=at or T0,
    )
    async with pool.acquire() as conn, conn.transaction():
        await apply_events(conn, channel=channel, events=[event])
        conversation_id: int = await conn.fetchval(
            "SELECT conversation_id FROM messages WHERE channel_id = $1 AND external_id = $2",
            channel.id, external_id,
        )
    return conversation_id


def make_ctx(db_url: str, pool: asyncpg.Pool, **fields: Any) -> AppContext:
    ctx = AppContext(settings=load_settings(database_url=db_url), pool=pool, broker=InProcessBroker())
    for name, value in fields.items():
        setattr(ctx, name, value)
    return ctx


class ScriptedSender:
    """A channel sender whose outcomes are scripted: each call takes the next
    exception from ``script`` and raises it; when the script is empty it succeeds."""

    def __init__(self, script: list[BaseException] | None = None, *, pause: float = 0.0) -> None:
        self.script = list(script or [])
        self.calls: list[OutboundRequest] = []
        self.delivered: list[OutboundRequest] = []
        self.pause = pause

    async def send(self, request: OutboundRequest) -> SendResult:
        self.calls.append(request)
        if self.pause:
            await asyncio.sleep(self.pause)
        if self.script:
            raise self.script.pop(0)
        self.delivered.append(request)
        return SendResult(external_id=f"wamid.out-{request.message_id}")
