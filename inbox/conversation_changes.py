"""Changes agents make to a conversation: status, assignee, marking it read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from inbox import eventlog
from inbox.errors import Conflict, NotFound
from inbox.eventlog import EventRecord, PendingEvent
from inbox.views import conversation_json
from schema.enums import ConversationStatus, EventName


@dataclass(frozen=True)
class ConversationChange:
    status: ConversationStatus | None = None
    assignee_set: bool = False  # True: set ``assignee`` (None unassigns)
    assignee: str | None = None
    mark_read: bool = False


async def change_conversation(
    conn: asyncpg.Connection, account_id: int, conversation_id: int, change: ConversationChange
) -> tuple[dict[str, Any], list[EventRecord]]:
    """Apply ``change`` and log ``conversation.updated`` in one transaction.

    Returns the conversation after the change and the committed events (none
    when nothing actually changed). Raises ``NotFound`` and, when reopening
    would give the contact two active conversations on one channel, ``Conflict``.
    """
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT status, assignee, unread_count FROM conversations WHERE id = $1 AND account_id = $2 FOR UPDATE",
            conversation_id,
            account_id,
        )
        if row is None:
            raise NotFound(f"conversation {conversation_id} not found")
        status = str(change.status) if change.status is not None else row["status"]
        assignee = change.assignee if change.assignee_set else row["assignee"]
        unread = 0 if change.mark_read else row["unread_count"]
        if (status, assignee, unread) == (row["status"], row["assignee"], row["unread_count"]):
            return await conversation_json(conn, account_id, conversation_id), []
        try:
            await conn.execute(
                """UPDATE conversations SET status = $3, assignee = $4, unread_count = $5, updated_at = now()
                   WHERE id = $1 AND account_id = $2""",
                conversation_id,
                account_id,
                status,
                assignee,
                unread,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(
                "the contact already has another active conversation on this channel; resolve that one first"
            ) from exc
        data = await conversation_json(conn, account_id, conversation_id)
        records = await eventlog.append(
            conn, account_id, [PendingEvent(EventName.CONVERSATION_UPDATED, conversation_id, data)]
        )
    return data, records
