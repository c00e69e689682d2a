"""Applying normalised message events inside the caller's transaction.

Each ``apply_*`` returns the events to log. Updates whose target message is
not known yet (a status racing its send, a reaction to an old message) are
parked in ``pending_updates`` and applied when the message appears.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from inbox.channels import ChannelRow
from inbox.eventlog import PendingEvent
from inbox.status import TIMESTAMP_COLUMN, next_status
from inbox.threading import thread_for
from inbox.views import MESSAGE_COLUMNS, contact_json, message_from_row, message_json, messages_json
from schema.enums import EventName, MessageDirection, MessageStatus
from schema.events import (
    ContactUnreachable,
    InboundMessage,
    MessageDeletion,
    MessageEdit,
    NormalizedEvent,
    Reaction,
    StatusUpdate,
)

_event_adapter: TypeAdapter[NormalizedEvent] = TypeAdapter(NormalizedEvent)
MessageUpdate = StatusUpdate | MessageEdit | MessageDeletion | Reaction


async def _lock_external_id(conn: asyncpg.Connection, channel_id: int, external_id: str) -> None:
    # Serialises concurrent deliveries of the same provider message (webhook
    # retries racing each other) so exactly one of them inserts it.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"msg:{channel_id}:{external_id}")


async def _updated(conn: asyncpg.Connection, account_id: int, message_id: int) -> PendingEvent:
    data = await message_json(conn, account_id, message_id)
    return PendingEvent(EventName.MESSAGE_UPDATED, data["conversation_id"], data)


async def apply_message(conn: asyncpg.Connection, channel: ChannelRow, ev: InboundMessage) -> list[PendingEvent]:
    await _lock_external_id(conn, channel.id, ev.external_id)
    exists = await conn.fetchval(
        "SELECT id FROM messages WHERE channel_id = $1 AND external_id = $2", channel.id, ev.external_id
    )
    if exists is not None:
        return []
    inbound = ev.direction == MessageDirection.INBOUND
    if not inbound:
        adopted = await _adopt_own_send(conn, channel, ev)
        if adopted is not None:
            return adopted
    is_group = ev.sender is not None and ev.sender.external_id != ev.contact.external_id
    thread = await thread_for(conn, channel=channel, contact=ev.contact, at=ev.occurred_at, inbound=inbound,
                              is_group=is_group)
    reply_to_id = None
    if ev.reply_to_external_id:
        reply_to_id = await conn.fetchval(
            "SELECT id FROM messages WHERE channel_id = $1 AND external_id = $2", channel.id, ev.reply_to_external_id
        )
    status = MessageStatus.RECEIVED if inbound else MessageStatus.SENT
    # RETURNING the rendered columns: nothing below changes the message row, so this is
    # what a SELECT after the inserts would read, without its round trip.
    row = await conn.fetchrow(
        f"""INSERT INTO messages (account_id, conversation_id, channel_id, direction, type, text, status,
               external_id, reply_to_id, reply_to_external_id, sender, extra, raw, created_at, sent_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING {MESSAGE_COLUMNS}""",
        channel.account_id,
        thread.conversation_id,
        channel.id,
        str(ev.direction),
        str(ev.type),
        ev.text,
        str(status),
        ev.external_id,
        reply_to_id,
        ev.reply_to_external_id,
        ev.sender.model_dump() if ev.sender else None,
        ev.extra,
        ev.raw,
        ev.occurred_at,
        None if inbound else ev.occurred_at,
    )
    assert row is not None  # INSERT … RETURNING without ON CONFLICT always returns its row
    message_id: int = row["id"]
    if not inbound:
        await conn.execute(
            """UPDATE conversations SET first_response_at = COALESCE(first_response_at, $2)
               WHERE id = $1 AND first_inbound_at IS NOT NULL AND first_inbound_at <= $2""",
            thread.conversation_id,
            ev.occurred_at,
        )
    for position, media in enumerate(ev.media):
        media_id = await conn.fetchval(
            """INSERT INTO media_files (account_id, channel_id, provider_id, mime_type, name, size,
                   expected_sha256, source_url) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id""",
            channel.account_id,
            channel.id,
            media.provider_id,
            media.mime_type,
            media.name,
            media.size,
            media.sha256,
            media.url,
        )
        await conn.execute(
            "INSERT INTO message_media (message_id, media_id, position) VALUES ($1, $2, $3)",
            message_id,
            media_id,
            position,
        )
    events = list(thread.events)
    if inbound:
        # Someone who writes to us can be written to again (e.g. unblocked the bot).
        reachable = await conn.fetchval(
            """UPDATE contact_identities SET unreachable_at = NULL, unreachable_reason = NULL
               WHERE account_id = $1 AND channel_type = $2 AND external_id = $3 AND unreachable_at IS NOT NULL
               RETURNING contact_id""",
            channel.account_id,
            str(channel.type),
            ev.contact.external_id,
        )
        if reachable is not None:
            events.append(PendingEvent(EventName.CONTACT_UPDATED, None,
                                       await contact_json(conn, channel.account_id, reachable)))
    # Without media the message has none yet (it is ours, uncommitted): no media query.
    data = (await messages_json(conn, [row]))[0] if ev.media else message_from_row(row, [])
    events.append(PendingEvent(EventName.MESSAGE_CREATED, thread.conversation_id, data))
    events.extend(await apply_pending(conn, channel, message_id))
    return events


async def _adopt_own_send(
    conn: asyncpg.Connection, channel: ChannelRow, ev: InboundMessage
) -> list[PendingEvent] | None:
    """A provider echo of a send of ours that is still in flight (the echo beat the
    worker's commit of the provider id): give our message that id instead of
    storing the echo as a second message. Matched on channel, recipient and text."""
    row = await conn.fetchrow(
        """SELECT m.id FROM messages m
           JOIN outbound_jobs j ON j.message_id = m.id AND j.status = 'in_flight'
           JOIN conversations c ON c.id = m.conversation_id
           JOIN contact_identities ci ON ci.contact_id = c.contact_id AND ci.account_id = m.account_id
           WHERE m.channel_id = $1 AND m.account_id = $2 AND m.external_id IS NULL AND m.status = 'pending'
             AND ci.channel_type = $3 AND ci.external_id = ANY($4::text[]) AND m.text IS NOT DISTINCT FROM $5
           ORDER BY m.id LIMIT 1 FOR UPDATE OF m SKIP LOCKED""",
        channel.id,
        channel.account_id,
        str(channel.type),
        [ev.contact.external_id, *ev.contact.aliases],
        ev.text,
    )
    if row is None:
        return None
    await conn.execute("UPDATE messages SET external_id = $2 WHERE id = $1", row["id"], ev.external_id)
    # The worker moves it to ``sent`` when the provider's answer is committed.
    return [await _updated(conn, channel.account_id, row["id"]), *await apply_pending(conn, channel, row["id"])]


async def _park(conn: asyncpg.Connection, channel: ChannelRow, ev: MessageUpdate) -> list[PendingEvent]:
    await conn.execute(
        "INSERT INTO pending_updates (account_id, channel_id, external_id, event) VALUES ($1, $2, $3, $4)",
        channel.account_id,
        channel.id,
        ev.external_id,
        ev.model_dump(mode="json"),
    )
    return []


async def _target(conn: asyncpg.Connection, channel: ChannelRow, external_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT id, status, text, reactions, edited_at, deleted_at FROM messages
           WHERE channel_id = $1 AND external_id = $2 FOR UPDATE""",
        channel.id,
        external_id,
    )


async def apply_status(conn: asyncpg.Connection, channel: ChannelRow, ev: StatusUpdate) -> list[PendingEvent]:
    row = await _target(conn, channel, ev.external_id)
    if row is None:
        return await _park(conn, channel, ev)
    current = MessageStatus(row["status"])
    if current == MessageStatus.RECEIVED:
        return []
    new = next_status(current, ev.status)
    params: list[Any] = [row["id"], str(new)]
    sets = ["status = $2"]
    changed_if = ["status IS DISTINCT FROM $2"]
    column = TIMESTAMP_COLUMN.get(ev.status)
    if column is not None:
        # Every timestamp is kept, even for a status that no longer moves the message.
        params.append(ev.occurred_at)
        sets.append(f"{column} = COALESCE({column}, ${len(params)})")
        changed_if.append(f"{column} IS NULL")
    if new == MessageStatus.FAILED and current != MessageStatus.FAILED:
        params += [ev.error_code, ev.error_message]
        sets.append(f"error_code = ${len(params) - 1}, error_message = ${len(params)}")
    changed = await conn.fetchval(
        f"UPDATE messages SET {', '.join(sets)} WHERE id = $1 AND ({' OR '.join(changed_if)}) RETURNING id",
        *params,
    )
    return [await _updated(conn, channel.account_id, row["id"])] if changed else []


async def apply_edit(conn: asyncpg.Connection, channel: ChannelRow, ev: MessageEdit) -> list[PendingEvent]:
    row = await _target(conn, channel, ev.external_id)
    if row is None:
        return await _park(conn, channel, ev)
    if row["edited_at"] is not None and row["edited_at"] >= ev.edited_at:
        return []  # a replay, or an older edit arriving late
    await conn.execute(
        """UPDATE messages SET text = $2, edited_at = $3,
               edit_history = edit_history || jsonb_build_array(jsonb_build_object('text', text::text,
                   'replaced_at', $3::timestamptz))
           WHERE id = $1""",
        row["id"],
        ev.text,
        ev.edited_at,
    )
    return [await _updated(conn, channel.account_id, row["id"])]


async def apply_deletion(conn: asyncpg.Connection, channel: ChannelRow, ev: MessageDeletion) -> list[PendingEvent]:
    row = await _target(conn, channel, ev.external_id)
    if row is None:
        return await _park(conn, channel, ev)
    if row["deleted_at"] is not None:
        return []
    await conn.execute("UPDATE messages SET deleted_at = $2 WHERE id = $1", row["id"], ev.deleted_at)
    return [await _updated(conn, channel.account_id, row["id"])]


async def apply_reaction(conn: asyncpg.Connection, channel: ChannelRow, ev: Reaction) -> list[PendingEvent]:
    row = await _target(conn, channel, ev.external_id)
    if row is None:
        return await _park(conn, channel, ev)
    current: list[dict[str, Any]] = list(row["reactions"])
    mine = [r for r in current if r.get("from") == ev.sender]
    at = ev.occurred_at.astimezone(UTC).isoformat()
    if mine and mine[0].get("at") and mine[0]["at"] > at:
        return []  # an older reaction arriving after a newer one from the same sender
    others = [r for r in current if r.get("from") != ev.sender]
    new = others + ([{"emoji": ev.emoji, "from": ev.sender, "at": at}] if ev.emoji else [])
    if [(r["emoji"], r["from"]) for r in new] == [(r["emoji"], r["from"]) for r in current]:
        return []
    await conn.execute("UPDATE messages SET reactions = $2 WHERE id = $1", row["id"], new)
    return [await _updated(conn, channel.account_id, row["id"])]


async def apply_unreachable(
    conn: asyncpg.Connection, channel: ChannelRow, ev: ContactUnreachable
) -> list[PendingEvent]:
    contact_id = await conn.fetchval(
        """UPDATE contact_identities SET unreachable_at = $4, unreachable_reason = $5
           WHERE account_id = $1 AND channel_type = $2 AND external_id = $3
             AND unreachable_at IS NULL
           RETURNING contact_id""",
        channel.account_id,
        str(channel.type),
        ev.contact.external_id,
        ev.occurred_at,
        ev.reason,
    )
    if contact_id is None:
        return []
    return [PendingEvent(EventName.CONTACT_UPDATED, None, await contact_json(conn, channel.account_id, contact_id))]


async def apply_update(conn: asyncpg.Connection, channel: ChannelRow, ev: MessageUpdate) -> list[PendingEvent]:
    if isinstance(ev, StatusUpdate):
        return await apply_status(conn, channel, ev)
    if isinstance(ev, MessageEdit):
        return await apply_edit(conn, channel, ev)
    if isinstance(ev, MessageDeletion):
        return await apply_deletion(conn, channel, ev)
    return await apply_reaction(conn, channel, ev)


async def apply_pending(conn: asyncpg.Connection, channel: ChannelRow, message_id: int) -> list[PendingEvent]:
    """Apply parked updates for a message that just got its external id."""
    rows = await conn.fetch(
        """DELETE FROM pending_updates p USING messages m
           WHERE m.id = $1 AND p.channel_id = m.channel_id AND p.external_id = m.external_id
           RETURNING p.id, p.event""",
        message_id,
    )
    events: list[PendingEvent] = []
    for row in sorted(rows, key=lambda r: r["id"]):
        ev = _event_adapter.validate_python(row["event"])
        assert isinstance(ev, StatusUpdate | MessageEdit | MessageDeletion | Reaction)
        events.extend(await apply_update(conn, channel, ev))
    return events
