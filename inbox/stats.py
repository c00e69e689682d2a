"""Counts for dashboards (``GET /api/v1/stats``).

``since``/``until`` bound the time-based figures (messages by creation, calls
by start, first response by the conversation's first inbound message);
conversation counts by status are always the current state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from inbox.jsonfmt import iso
from schema.enums import CallDisposition, ConversationStatus

Conn = asyncpg.Connection | asyncpg.Pool


async def account_stats(
    conn: Conn, account_id: int, *, since: datetime | None = None, until: datetime | None = None
) -> dict[str, Any]:
    by_status = {str(s): 0 for s in ConversationStatus}
    for r in await conn.fetch(
        "SELECT status, count(*) AS n FROM conversations WHERE account_id = $1 GROUP BY status", account_id
    ):
        by_status[r["status"]] = r["n"]

    messages = [
        {
            "channel_id": r["channel_id"],
            "channel_type": r["type"],
            "channel_name": r["name"],
            "direction": r["direction"],
            "count": r["n"],
        }
        for r in await conn.fetch(
            """SELECT m.channel_id, ch.type, ch.name, m.direction, count(*) AS n
               FROM messages m JOIN channels ch ON ch.id = m.channel_id
               WHERE m.account_id = $1
                 AND ($2::timestamptz IS NULL OR m.created_at >= $2)
                 AND ($3::timestamptz IS NULL OR m.created_at < $3)
               GROUP BY m.channel_id, ch.type, ch.name, m.direction
               ORDER BY m.channel_id, m.direction""",
            account_id,
            since,
            until,
        )
    ]

    calls = await conn.fetchrow(
        """SELECT count(*) AS total,
                  count(*) FILTER (WHERE disposition = 'answered') AS answered,
                  -- missed: inbound calls that ended without an agent answering
                  count(*) FILTER (WHERE direction = 'inbound' AND status = 'ended'
                                   AND disposition IS DISTINCT FROM 'answered') AS missed,
                  count(*) FILTER (WHERE status <> 'ended') AS active
           FROM calls
           WHERE account_id = $1
             AND ($2::timestamptz IS NULL OR started_at >= $2)
             AND ($3::timestamptz IS NULL OR started_at < $3)""",
        account_id,
        since,
        until,
    )
    by_disposition = {str(d): 0 for d in CallDisposition}
    for r in await conn.fetch(
        """SELECT disposition, count(*) AS n FROM calls
           WHERE account_id = $1 AND disposition IS NOT NULL
             AND ($2::timestamptz IS NULL OR started_at >= $2)
             AND ($3::timestamptz IS NULL OR started_at < $3)
           GROUP BY disposition""",
        account_id,
        since,
        until,
    ):
        by_disposition[r["disposition"]] = r["n"]

    first_response = await conn.fetchrow(
        """SELECT percentile_cont(0.5) WITHIN GROUP (
                      ORDER BY extract(epoch FROM first_response_at - first_inbound_at)) AS median,
                  count(*) AS n
           FROM conversations
           WHERE account_id = $1 AND first_inbound_at IS NOT NULL AND first_response_at IS NOT NULL
             AND first_response_at >= first_inbound_at
             AND ($2::timestamptz IS NULL OR first_inbound_at >= $2)
             AND ($3::timestamptz IS NULL OR first_inbound_at < $3)""",
        account_id,
        since,
        until,
    )
    assert calls is not None and first_response is not None
    median = first_response["median"]
    return {
        "since": iso(since),
        "until": iso(until),
        "open_conversations": by_status[ConversationStatus.OPEN],
        "conversations": by_status,
        "messages": messages,
        "calls": {
            "total": calls["total"],
            "answered": calls["answered"],
            "missed": calls["missed"],
            "active": calls["active"],
            "by_disposition": by_disposition,
        },
        "first_response": {
            "median_seconds": float(median) if median is not None else None,
            "conversations": first_response["n"],
        },
    }
