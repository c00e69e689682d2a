"""Test data for the inbox core: accounts and channels inserted through SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from inbox.accounts import create_account
from inbox.channels import ChannelRow, get_channel_any_account
from schema.enums import MessageType
from schema.events import ContactRef, InboundMessage

T0 = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


async def make_channel(pool, account_id: int, type_: str = "whatsapp", provider_key: str | None = None,
                       **config: Any) -> ChannelRow:
    channel_id = await pool.fetchval(
        "INSERT INTO channels (account_id, type, name, config, provider_key) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        account_id, type_, f"{type_} test", config, provider_key,
    )
    row = await get_channel_any_account(pool, channel_id)
    assert row is not None
    return row


async def make_account_with_channel(pool, name: str = "acme", **kw: Any) -> tuple[int, str, ChannelRow]:
    account_id, key = await create_account(pool, name)
    return account_id, key, await make_channel(pool, account_id, **kw)


def text_message(external_id: str = "wamid.1", contact: str = "4915112345678", text: str = "hallo",
                 at: datetime | None = None, **kw: Any) -> InboundMessage:
    return InboundMessage(
        external_id=external_id,
        contact=ContactRef(external_id=contact, name="Lena", phone="+" + contact),
        type=MessageType.TEXT,
        text=text,
        occurred_at=at or T0,
        **kw,
    )


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)
