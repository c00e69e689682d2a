"""Applying :class:`schema.events.IdentityChange`: a contact's ids on a channel type change.

A WhatsApp user changes number or business-scoped user id; a Telegram group
becomes a supergroup with a new chat id. The contact, and so its conversations,
move to the new ids; later traffic under them threads where it always did.
"""

from __future__ import annotations

import asyncpg

from inbox.channels import ChannelRow
from inbox.eventlog import PendingEvent
from inbox.views import contact_json
from schema.enums import EventName
from schema.events import IdentityChange


async def apply_identity_change(
    conn: asyncpg.Connection, channel: ChannelRow, ev: IdentityChange
) -> list[PendingEvent]:
    lookup = [*ev.known_ids, *ev.retired_ids]
    rows = await conn.fetch(
        """SELECT contact_id, external_id FROM contact_identities
           WHERE account_id = $1 AND channel_type = $2 AND external_id = ANY($3::text[])
           ORDER BY id FOR UPDATE""",
        channel.account_id,
        str(channel.type),
        lookup,
    )
    if not rows:
        return []  # a notice about someone this account never talked to
    contact_id: int = rows[0]["contact_id"]
    added = await conn.fetch(
        """INSERT INTO contact_identities (account_id, contact_id, channel_type, external_id, display)
           SELECT $1, $2, $3, n, n FROM unnest($4::text[]) AS n
           ON CONFLICT (account_id, channel_type, external_id) DO NOTHING RETURNING id""",
        channel.account_id,
        contact_id,
        str(channel.type),
        list(ev.new_ids),
    )
    # Retire old ids only once the contact can be reached under a new one.
    still_reachable = await conn.fetchval(
        """SELECT count(*) FROM contact_identities WHERE account_id = $1 AND contact_id = $2
               AND channel_type = $3 AND NOT (external_id = ANY($4::text[]))""",
        channel.account_id,
        contact_id,
        str(channel.type),
        list(ev.retired_ids),
    )
    retired = []
    if still_reachable:
        retired = await conn.fetch(
            """DELETE FROM contact_identities WHERE account_id = $1 AND contact_id = $2 AND channel_type = $3
                   AND external_id = ANY($4::text[]) RETURNING id""",
            channel.account_id,
            contact_id,
            str(channel.type),
            list(ev.retired_ids),
        )
    renamed = await conn.fetchval(
        """UPDATE contacts SET name = COALESCE($3, name), phone = COALESCE($4, phone), updated_at = now()
           WHERE id = $1 AND account_id = $2
             AND (($3::text IS NOT NULL AND name IS DISTINCT FROM $3)
                  OR ($4::text IS NOT NULL AND phone IS DISTINCT FROM $4))
           RETURNING id""",
        contact_id,
        channel.account_id,
        ev.name,
        ev.phone,
    )
    if not (added or retired or renamed):
        return []
    return [PendingEvent(EventName.CONTACT_UPDATED, None, await contact_json(conn, channel.account_id, contact_id))]
