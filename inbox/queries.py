"""Read side of the REST API: filtered lists with keyset pagination.

Each list function takes the keyset position of the last item already seen
(``after``) and returns at most ``limit + 1`` rows, so the caller can tell
whether another page exists without a count. Every query filters by account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from inbox.calls import CALL_SELECT, call_from_row
from inbox.jsonfmt import iso
from inbox.views import CONVERSATION_SELECT, MESSAGE_COLUMNS, conversation_from_row, messages_json
from schema import strict_json

Conn = asyncpg.Connection | asyncpg.Pool


def like_pattern(text: str) -> str:
    """A substring ILIKE pattern matching ``text`` literally (``%`` and ``_`` included)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# --- conversations --------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationFilter:
    statuses: list[str] | None = None
    channel_id: int | None = None
    assignee: str | None = None
    q: str | None = None


async def list_conversations(
    conn: Conn, account_id: int, flt: ConversationFilter, *, after: tuple[datetime, int] | None, limit: int
) -> list[tuple[tuple[datetime, int], dict[str, Any]]]:
    """Most recent activity first, each with its keyset position ``(last_activity_at, id)``;
    ``after`` is the position of the last item seen."""
    rows = await conn.fetch(
        CONVERSATION_SELECT
        + """
        WHERE c.account_id = $1
          AND ($2::text[] IS NULL OR c.status = ANY($2::text[]))
          AND ($3::bigint IS NULL OR c.channel_id = $3)
          AND ($4::text IS NULL OR c.assignee = $4)
          AND ($5::text IS NULL OR ct.name ILIKE $5 OR ct.phone ILIKE $5 OR EXISTS (
                SELECT 1 FROM contact_identities ci
                WHERE ci.account_id = c.account_id AND ci.contact_id = c.contact_id AND ci.external_id ILIKE $5)
               OR EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.text ILIKE $5))
          AND ($6::timestamptz IS NULL OR (c.last_activity_at, c.id) < ($6::timestamptz, $7::bigint))
        ORDER BY c.last_activity_at DESC, c.id DESC
        LIMIT $8""",
        account_id,
        flt.statuses,
        flt.channel_id,
        flt.assignee,
        like_pattern(flt.q) if flt.q else None,
        after[0] if after else None,
        after[1] if after else None,
        limit + 1,
    )
    return [((r["last_activity_at"], r["id"]), conversation_from_row(r)) for r in rows]


# --- contacts -------------------------------------------------------------------------------


async def list_contact_ids(conn: Conn, account_id: int, *, q: str | None, after: int | None, limit: int) -> list[int]:
    rows = await conn.fetch(
        """SELECT c.id FROM contacts c
           WHERE c.account_id = $1
             AND ($2::text IS NULL OR c.name ILIKE $2 OR c.phone ILIKE $2 OR EXISTS (
                   SELECT 1 FROM contact_identities ci
                   WHERE ci.account_id = c.account_id AND ci.contact_id = c.id
                     AND (ci.external_id ILIKE $2 OR ci.display ILIKE $2)))
             AND ($3::bigint IS NULL OR c.id > $3)
           ORDER BY c.id LIMIT $4""",
        account_id,
        like_pattern(q) if q else None,
        after,
        limit + 1,
    )
    return [r["id"] for r in rows]


# --- timeline -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    kind: str  # "message" | "call"
    id: int
    at: datetime


async def timeline_entries(
    conn: Conn,
    account_id: int,
    conversation_id: int,
    *,
    after: tuple[datetime, str, int] | None,
    limit: int,
    descending: bool = False,
) -> list[TimelineEntry]:
    """Messages (by ``created_at``) and calls (by ``started_at``) of a conversation, in time order."""
    op, order = ("<", "DESC") if descending else (">", "ASC")
    rows = await conn.fetch(
        f"""SELECT kind, id, at FROM (
                SELECT 'message' AS kind, m.id, m.created_at AS at FROM messages m
                WHERE m.account_id = $1 AND m.conversation_id = $2
                UNION ALL
                SELECT 'call' AS kind, c.id, c.started_at AS at FROM calls c
                WHERE c.account_id = $1 AND c.conversation_id = $2
            ) t
            WHERE $3::timestamptz IS NULL OR (t.at, t.kind, t.id) {op} ($3::timestamptz, $4::text, $5::bigint)
            ORDER BY t.at {order}, t.kind {order}, t.id {order}
            LIMIT $6""",
        account_id,
        conversation_id,
        after[0] if after else None,
        after[1] if after else None,
        after[2] if after else None,
        limit + 1,
    )
    return [TimelineEntry(r["kind"], r["id"], r["at"]) for r in rows]


async def messages_by_id(conn: Conn, account_id: int, ids: list[int]) -> dict[int, dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE account_id = $1 AND id = ANY($2::bigint[])", account_id, ids
    )
    return {m["id"]: m for m in await messages_json(conn, list(rows))}


async def calls_by_id(conn: Conn, account_id: int, ids: list[int]) -> dict[int, dict[str, Any]]:
    rows = await conn.fetch(CALL_SELECT + " WHERE c.account_id = $1 AND c.id = ANY($2::bigint[])", account_id, ids)
    return {r["id"]: call_from_row(r) for r in rows}


# --- dead letters ---------------------------------------------------------------------------


def _payload(text: str) -> Any:
    try:
        data = strict_json.loads(text)
    except strict_json.JsonRejected:
        return text  # not JSON (e.g. a form-encoded body), or NaN and the like: shown verbatim
    # Decoded escapes may hold what a response cannot encode (lone surrogates): the raw text can.
    return text if strict_json.unstorable(data) is not None else data


def inbound_from_row(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["id"],
        "channel_id": r["channel_id"],
        "status": r["status"],
        "error": r["error"],
        "attempts": r["attempts"],
        "received_at": iso(r["received_at"]),
        "processed_at": iso(r["processed_at"]),
        "payload": _payload(r["payload"]),
    }


_INBOUND = "SELECT id, channel_id, status, error, attempts, received_at, processed_at, payload FROM inbound_events"


async def list_inbound(
    conn: Conn, account_id: int, *, status: str | None, channel_id: int | None, before: int | None, limit: int
) -> list[dict[str, Any]]:
    """Newest first; ``before`` is the id of the last item seen."""
    rows = await conn.fetch(
        _INBOUND
        + """ WHERE account_id = $1 AND ($2::text IS NULL OR status = $2)
              AND ($3::bigint IS NULL OR channel_id = $3) AND ($4::bigint IS NULL OR id < $4)
            ORDER BY id DESC LIMIT $5""",
        account_id,
        status,
        channel_id,
        before,
        limit + 1,
    )
    return [inbound_from_row(r) for r in rows]


async def get_inbound(conn: Conn, account_id: int, inbound_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(_INBOUND + " WHERE account_id = $1 AND id = $2", account_id, inbound_id)
    return inbound_from_row(row) if row else None
