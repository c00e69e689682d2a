"""``inbox-gateway replay``: re-process dead-lettered inbound events with the current parsers."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from inbox.channels import ChannelRow
from inbox.ingest import IngestResult, replay_failed
from schema.enums import ChannelType
from schema.events import ParsedPayload, ParseError


def parse_stored(channel: ChannelRow, payload: str) -> ParsedPayload:
    """Parse a stored raw provider body with the parser of its channel type."""
    if channel.type == ChannelType.WHATSAPP:
        from channels.whatsapp.parse import parse_body as parse_whatsapp

        return parse_whatsapp(payload)
    if channel.type == ChannelType.TELEGRAM:
        from channels.telegram.parse import parse_body as parse_telegram

        return parse_telegram(payload)
    raise ParseError(f"{channel.type} payloads are not stored as inbound events")


async def replay(
    pool: asyncpg.Pool, *, account_id: int | None = None, ids: Sequence[int] | None = None
) -> list[IngestResult]:
    """Replay dead letters. Their events land in the log; live subscribers catch up from it."""
    return await replay_failed(pool, parse_stored, account_id=account_id, ids=ids)
