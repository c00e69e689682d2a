"""The durable event log with a per-account, gap-free ``seq``.

Why not a sequence: values of a bigserial are handed out at insert time but
become visible at commit time, so a reader can see seq 7 before seq 6 exists.
Instead every writing transaction bumps ``accounts.last_seq`` with
``UPDATE ... RETURNING``; the row lock is held until commit, so the next
writer of the same account gets its seq only after this one committed (or
rolled back, in which case the number is reused). Seqs therefore commit in
order with no holes. Callers append events last, just before commit, to keep
the lock short.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from schema.enums import EventName


@dataclass(frozen=True)
class EventRecord:
    account_id: int
    seq: int
    event: str
    conversation_id: int | None
    data: dict[str, Any]
    ts: datetime

    def to_json(self) -> dict[str, Any]:
        """The shape shared by WS ``event`` frames and ``/api/v1/events`` items."""
        return {
            "type": "event",
            "seq": self.seq,
            "event": self.event,
            "account_id": self.account_id,
            "conversation_id": self.conversation_id,
            "data": self.data,
            "ts": self.ts.isoformat().replace("+00:00", "Z"),
        }


@dataclass(frozen=True)
class PendingEvent:
    name: EventName
    conversation_id: int | None
    data: dict[str, Any]


async def append(
    conn: asyncpg.Connection, account_id: int, events: Sequence[PendingEvent]
) -> list[EventRecord]:
    """Write events in the caller's transaction; return them with their seqs."""
    if not events:
        return []
    # One statement takes the seqs and writes the rows: the account row stays
    # locked only from here to COMMIT, which bounds per-account ingest rate.
    rows = await conn.fetch(
        """
        WITH taken AS (
            UPDATE accounts SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq
        )
        INSERT INTO events (account_id, seq, name, conversation_id, data)
        SELECT $1, taken.last_seq - $2 + e.ord, e.name, e.conversation_id, e.data
        FROM taken, unnest($3::text[], $4::bigint[], $5::jsonb[]) WITH ORDINALITY
             AS e(name, conversation_id, data, ord)
        RETURNING seq, name, conversation_id, data, ts
        """,
        account_id,
        len(events),
        [str(e.name) for e in events],
        [e.conversation_id for e in events],
        [e.data for e in events],
    )
    return [
        EventRecord(account_id, r["seq"], r["name"], r["conversation_id"], r["data"], r["ts"])
        for r in sorted(rows, key=lambda r: r["seq"])
    ]


async def fetch_after(
    conn: asyncpg.Connection | asyncpg.Pool, account_id: int, after: int, limit: int = 500
) -> list[EventRecord]:
    rows = await conn.fetch(
        """
        SELECT seq, name, conversation_id, data, ts FROM events
        WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3
        """,
        account_id,
        after,
        limit,
    )
    return [EventRecord(account_id, r["seq"], r["name"], r["conversation_id"], r["data"], r["ts"]) for r in rows]


async def latest_seq(conn: asyncpg.Connection | asyncpg.Pool, account_id: int) -> int:
    value = await conn.fetchval("SELECT last_seq FROM accounts WHERE id = $1", account_id)
    return int(value or 0)
