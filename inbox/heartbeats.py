"""``channel_heartbeats``: when a channel's provider connection last showed life.

The holder of a connection records it (throttled); after a gap, the next holder
reads it as the moment nobody was listening any more.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from inbox.channels import ChannelRow


async def record_seen(conn: asyncpg.Connection | asyncpg.Pool, channel: ChannelRow, at: datetime) -> None:
    """Move the channel's heartbeat forward to ``at`` (never back: an older writer does not win)."""
    await conn.execute(
        """INSERT INTO channel_heartbeats (channel_id, account_id, seen_at) VALUES ($1, $2, $3)
           ON CONFLICT (channel_id) DO UPDATE SET seen_at = GREATEST(channel_heartbeats.seen_at, EXCLUDED.seen_at)""",
        channel.id, channel.account_id, at,
    )


async def last_seen(conn: asyncpg.Connection | asyncpg.Pool, channel: ChannelRow) -> datetime | None:
    value = await conn.fetchval(
        "SELECT seen_at FROM channel_heartbeats WHERE channel_id = $1 AND account_id = $2",
        channel.id, channel.account_id,
    )
    return value if isinstance(value, datetime) else None
