"""Threading (DESIGN §5.4): contact identity → contact → the conversation a message or call joins."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from inbox.channels import ChannelRow
from inbox.eventlog import PendingEvent
from inbox.views import contact_json, conversation_json
from schema.enums import EventName
from schema.events import ContactRef


@dataclass
class Thread:
    contact_id: int
    conversation_id: int
    events: list[PendingEvent] = field(default_factory=list)


async def _contact_for(
    conn: asyncpg.Connection, channel: ChannelRow, contact: ContactRef, is_group: bool
) -> tuple[int, list[PendingEvent]]:
    ids = [contact.external_id, *contact.aliases]
    rows = await conn.fetch(
        """SELECT contact_id, external_id FROM contact_identities
           WHERE account_id = $1 AND channel_type = $2 AND external_id = ANY($3::text[])""",
        channel.account_id,
        str(channel.type),
        ids,
    )
    exact = next((r["contact_id"] for r in rows if r["external_id"] == contact.external_id), None)
    contact_id = exact if exact is not None else (rows[0]["contact_id"] if rows else None)
    events: list[PendingEvent] = []
    if contact_id is None:
        new_id: int = await conn.fetchval(
            "INSERT INTO contacts (account_id, name, phone, is_group) VALUES ($1, $2, $3, $4) RETURNING id",
            channel.account_id,
            contact.name,
            contact.phone,
            is_group,
        )
        claimed = await conn.fetchval(
            """INSERT INTO contact_identities (account_id, contact_id, channel_type, external_id, display)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (account_id, channel_type, external_id) DO NOTHING RETURNING contact_id""",
            channel.account_id,
            new_id,
            str(channel.type),
            contact.external_id,
            contact.phone or contact.name,
        )
        if claimed is None:  # a concurrent writer created this identity first: use theirs
            await conn.execute("DELETE FROM contacts WHERE id = $1", new_id)
            return await _contact_for(conn, channel, contact, is_group)
        await _remember_aliases(conn, channel, new_id, contact, known=set())
        return new_id, events
    await _remember_aliases(conn, channel, contact_id, contact, known={r["external_id"] for r in rows})
    if exact is None:
        # Known by an alias (e.g. wa_id) but not yet by this id: remember it.
        await conn.execute(
            """INSERT INTO contact_identities (account_id, contact_id, channel_type, external_id, display)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, channel_type, external_id) DO NOTHING""",
            channel.account_id,
            contact_id,
            str(channel.type),
            contact.external_id,
            contact.phone or contact.name,
        )
    changed = await conn.fetchval(
        """UPDATE contacts SET name = COALESCE($3, name), phone = COALESCE(phone, $4), updated_at = now()
           WHERE id = $1 AND account_id = $2
             AND (($3::text IS NOT NULL AND name IS DISTINCT FROM $3) OR (phone IS NULL AND $4::text IS NOT NULL))
           RETURNING id""",
        contact_id,
        channel.account_id,
        contact.name,
        contact.phone,
    )
    if changed is not None:
        events.append(
            PendingEvent(EventName.CONTACT_UPDATED, None, await contact_json(conn, channel.account_id, contact_id))
        )
    return contact_id, events


async def _remember_aliases(
    conn: asyncpg.Connection, channel: ChannelRow, contact_id: int, contact: ContactRef, known: set[str]
) -> None:
    """Other ids of the person (a WhatsApp wa_id beside the user id) become identities too:
    later traffic under either finds the contact, and senders can choose (a phone first).
    An id already held by another contact stays with it."""
    missing = [a for a in contact.aliases if a not in known and a != contact.external_id]
    if missing:
        await conn.execute(
            """INSERT INTO contact_identities (account_id, contact_id, channel_type, external_id, display)
               SELECT $1, $2, $3, a, a FROM unnest($4::text[]) AS a
               ON CONFLICT (account_id, channel_type, external_id) DO NOTHING""",
            channel.account_id,
            contact_id,
            str(channel.type),
            missing,
        )


async def thread_for(
    conn: asyncpg.Connection,
    *,
    channel: ChannelRow,
    contact: ContactRef,
    at: datetime,
    inbound: bool,
    is_group: bool = False,
) -> Thread:
    """Find or open the conversation for ``contact`` on ``channel`` and record activity at ``at``.

    Inbound traffic joins the unresolved conversation, reopens the latest
    resolved one, or opens a new one; it un-snoozes and counts as unread.
    Outbound traffic (echoes, calls we place) never reopens: it joins the
    latest conversation, or opens one when there is none.
    Returns the ``contact.updated`` / ``conversation.created|updated`` events to log.
    """
    contact_id, events = await _contact_for(conn, channel, contact, is_group)
    row = await conn.fetchrow(
        """SELECT id, status FROM conversations WHERE channel_id = $1 AND contact_id = $2
           ORDER BY (status <> 'resolved') DESC, last_activity_at DESC, id DESC LIMIT 1 FOR UPDATE""",
        channel.id,
        contact_id,
    )
    created = False
    conv_id: int | None = row["id"] if row is not None else None
    if conv_id is None:
        conv_id = await conn.fetchval(
            """INSERT INTO conversations (account_id, channel_id, contact_id, status, last_activity_at, created_at)
               VALUES ($1, $2, $3, 'open', $4, now())
               ON CONFLICT (channel_id, contact_id) WHERE status <> 'resolved' DO NOTHING RETURNING id""",
            channel.account_id,
            channel.id,
            contact_id,
            at,
        )
        if conv_id is None:  # a concurrent writer opened it first
            return await thread_for(conn, channel=channel, contact=contact, at=at, inbound=inbound, is_group=is_group)
        created = True
    await conn.execute(
        """UPDATE conversations SET
             status = CASE WHEN $3 AND status IN ('resolved', 'snoozed') THEN 'open' ELSE status END,
             unread_count = unread_count + CASE WHEN $3 THEN 1 ELSE 0 END,
             last_activity_at = GREATEST(last_activity_at, $2),
             first_inbound_at = CASE WHEN $3 THEN COALESCE(first_inbound_at, $2) ELSE first_inbound_at END,
             updated_at = now()
           WHERE id = $1""",
        conv_id,
        at,
        inbound,
    )
    name = EventName.CONVERSATION_CREATED if created else EventName.CONVERSATION_UPDATED
    events.append(PendingEvent(name, conv_id, await conversation_json(conn, channel.account_id, conv_id)))
    return Thread(contact_id, conv_id, events)
