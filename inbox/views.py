"""The JSON shapes of DESIGN §6 for conversations, messages and contacts.

The same dicts are API bodies and the ``data`` of events, so a client sees one
shape whichever way it learns about a change.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from inbox.errors import NotFound
from inbox.jsonfmt import iso

Conn = asyncpg.Connection | asyncpg.Pool

MEDIA_SQL = """
    SELECT mm.message_id, f.id, f.mime_type, f.name, f.size, f.sha256, f.status
    FROM message_media mm JOIN media_files f ON f.id = mm.media_id
    WHERE mm.message_id = ANY($1::bigint[]) ORDER BY mm.message_id, mm.position, f.id
"""


def media_item(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["id"],
        "mime_type": r["mime_type"],
        "name": r["name"],
        "size": r["size"],
        "sha256": r["sha256"],
        "status": r["status"],
        "url": f"/api/v1/media/{r['id']}",
    }


MESSAGE_COLUMNS = """
    id, account_id, conversation_id, channel_id, direction, type, text, status, external_id,
    reply_to_id, sender, author, reactions, edit_history, extra, error_code, error_message,
    created_at, sent_at, delivered_at, read_at, played_at, failed_at, edited_at, deleted_at
"""


def message_from_row(r: asyncpg.Record, media: list[dict[str, Any]]) -> dict[str, Any]:
    error = None
    if r["error_code"] is not None or r["error_message"] is not None:
        error = {"code": r["error_code"], "message": r["error_message"]}
    return {
        "id": r["id"],
        "conversation_id": r["conversation_id"],
        "channel_id": r["channel_id"],
        "direction": r["direction"],
        "type": r["type"],
        "text": r["text"],
        "status": r["status"],
        "external_id": r["external_id"],
        "reply_to_id": r["reply_to_id"],
        "sender": r["sender"],
        "author": r["author"],
        "media": media,
        "reactions": [{"emoji": x["emoji"], "from": x["from"]} for x in r["reactions"]],
        "edit_history": r["edit_history"],
        "extra": r["extra"],
        "error": error,
        "created_at": iso(r["created_at"]),
        "sent_at": iso(r["sent_at"]),
        "delivered_at": iso(r["delivered_at"]),
        "read_at": iso(r["read_at"]),
        "played_at": iso(r["played_at"]),
        "failed_at": iso(r["failed_at"]),
        "edited_at": iso(r["edited_at"]),
        "deleted_at": iso(r["deleted_at"]),
    }


async def messages_json(conn: Conn, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """Render message rows (selected with MESSAGE_COLUMNS) with their media in one extra query."""
    media: dict[int, list[dict[str, Any]]] = {}
    if rows:
        for m in await conn.fetch(MEDIA_SQL, [r["id"] for r in rows]):
            media.setdefault(m["message_id"], []).append(media_item(m))
    return [message_from_row(r, media.get(r["id"], [])) for r in rows]


async def message_json(conn: Conn, account_id: int, message_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND account_id = $2", message_id, account_id
    )
    if row is None:
        raise NotFound(f"message {message_id} not found")
    return (await messages_json(conn, [row]))[0]


CONVERSATION_SELECT = """
    SELECT c.id, c.channel_id, ch.type AS channel_type, c.contact_id, ct.name AS contact_name,
           c.status, c.assignee, c.last_activity_at, c.unread_count, c.created_at, c.updated_at
    FROM conversations c
    JOIN channels ch ON ch.id = c.channel_id
    JOIN contacts ct ON ct.id = c.contact_id
"""


def conversation_from_row(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["id"],
        "channel_id": r["channel_id"],
        "channel_type": r["channel_type"],
        "contact": {"id": r["contact_id"], "name": r["contact_name"]},
        "status": r["status"],
        "assignee": r["assignee"],
        "last_activity_at": iso(r["last_activity_at"]),
        "unread_count": r["unread_count"],
        "created_at": iso(r["created_at"]),
        "updated_at": iso(r["updated_at"]),
    }


async def conversation_json(conn: Conn, account_id: int, conversation_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        CONVERSATION_SELECT + " WHERE c.id = $1 AND c.account_id = $2", conversation_id, account_id
    )
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return conversation_from_row(row)


async def contact_json(conn: Conn, account_id: int, contact_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT id, name, phone, is_group, created_at, updated_at FROM contacts WHERE id = $1 AND account_id = $2",
        contact_id,
        account_id,
    )
    if row is None:
        raise NotFound(f"contact {contact_id} not found")
    identities = await conn.fetch(
        """SELECT id, channel_type, external_id, display, unreachable_at, unreachable_reason
           FROM contact_identities WHERE contact_id = $1 AND account_id = $2 ORDER BY id""",
        contact_id,
        account_id,
    )
    return {
        "id": row["id"],
        "name": row["name"],
        "phone": row["phone"],
        "is_group": row["is_group"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "identities": [
            {
                "id": i["id"],
                "channel_type": i["channel_type"],
                "external_id": i["external_id"],
                "display": i["display"],
                "unreachable": i["unreachable_at"] is not None,
                "unreachable_at": iso(i["unreachable_at"]),
                "unreachable_reason": i["unreachable_reason"],
            }
            for i in identities
        ],
    }
