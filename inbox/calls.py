"""Calls in the inbox: a ``CallSnapshot`` from the telephony adapter applied to ``calls``.

``apply_call`` runs inside the ingest transaction. It finds the call by
``originate_id`` or ``external_id`` (the Linkedid; our click-to-call ChannelId
becomes the Linkedid, so either finds it), merges what the snapshot knows with
what is stored, and logs ``call.created`` / ``call.updated`` / ``call.ended``
only when something changed: applying the same snapshot twice adds nothing.

Merging rules (a snapshot may come from a tracker rebuilt after a reconnect,
which knows less than the database):

- status only moves forward (``ringing → in_progress → ended``);
- ``started_at``, ``answered_at``, direction and numbers: the first writer wins;
- ``agent`` and caller name: the latest known while the call lives (transfers
  move the agent), frozen once it ended;
- once ended, ``duration`` and ``billsec`` are computed from the stored times.
"""

from __future__ import annotations

import mimetypes
import posixpath
import re
from datetime import datetime
from typing import Any

import asyncpg

from inbox.channels import ChannelRow
from inbox.errors import NotFound
from inbox.eventlog import PendingEvent
from inbox.jsonfmt import iso
from inbox.threading import thread_for
from schema.calls import CallSnapshot
from schema.enums import CallDirection, CallDisposition, CallStatus, EventName
from schema.events import ContactRef

Conn = asyncpg.Connection | asyncpg.Pool

_RANK = {CallStatus.RINGING: 0, CallStatus.IN_PROGRESS: 1, CallStatus.ENDED: 2}
_MERGED = ("status", "disposition", "agent", "external_id", "originate_id", "from_number", "to_number",
           "caller_name", "started_at", "answered_at", "ended_at", "duration", "billsec", "hangup_cause")
_PHONE = re.compile(r"\+?\d{3,20}")
_AUDIO = {".wav": "audio/wav", ".wav49": "audio/wav", ".gsm": "audio/gsm", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}

CALL_SELECT = """
    SELECT c.id, c.conversation_id, c.channel_id, c.contact_id, c.direction, c.from_number, c.to_number,
           c.caller_name, c.status, c.disposition, c.agent, c.external_id, c.originate_id, c.started_at,
           c.answered_at, c.ended_at, c.duration, c.billsec, c.hangup_cause, c.recording_media_id,
           c.created_at, c.updated_at,
           f.mime_type AS rec_mime_type, f.name AS rec_name, f.size AS rec_size, f.sha256 AS rec_sha256,
           f.status AS rec_status
    FROM calls c LEFT JOIN media_files f ON f.id = c.recording_media_id
"""


def call_from_row(r: asyncpg.Record) -> dict[str, Any]:
    recording = None
    if r["recording_media_id"] is not None:
        recording = {
            "id": r["recording_media_id"],
            "mime_type": r["rec_mime_type"],
            "name": r["rec_name"],
            "size": r["rec_size"],
            "sha256": r["rec_sha256"],
            "status": r["rec_status"],
            "url": f"/api/v1/media/{r['recording_media_id']}",
        }
    return {
        "id": r["id"],
        "conversation_id": r["conversation_id"],
        "channel_id": r["channel_id"],
        "contact_id": r["contact_id"],
        "direction": r["direction"],
        "from_number": r["from_number"],
        "to_number": r["to_number"],
        "caller_name": r["caller_name"],
        "status": r["status"],
        "disposition": r["disposition"],
        "agent": r["agent"],
        "started_at": iso(r["started_at"]),
        "answered_at": iso(r["answered_at"]),
        "ended_at": iso(r["ended_at"]),
        "duration": r["duration"],
        "billsec": r["billsec"],
        "hangup_cause": r["hangup_cause"],
        "recording": recording,
        "external_id": r["external_id"],
        "originate_id": r["originate_id"],
        "created_at": iso(r["created_at"]),
        "updated_at": iso(r["updated_at"]),
    }


async def call_json(conn: Conn, account_id: int, call_id: int) -> dict[str, Any]:
    """The DESIGN §6 call shape; ``recording`` is its media or null."""
    row = await conn.fetchrow(CALL_SELECT + " WHERE c.id = $1 AND c.account_id = $2", call_id, account_id)
    if row is None:
        raise NotFound(f"call {call_id} not found")
    return call_from_row(row)


async def call_events_json(conn: Conn, account_id: int, call_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT type, data, occurred_at FROM call_events
           WHERE call_id = $1 AND account_id = $2 ORDER BY occurred_at, id""",
        call_id,
        account_id,
    )
    return [{"type": r["type"], "data": r["data"], "occurred_at": iso(r["occurred_at"])} for r in rows]


async def list_calls(
    conn: Conn,
    account_id: int,
    *,
    channel_id: int | None = None,
    conversation_id: int | None = None,
    status: str | None = None,
    direction: str | None = None,
    agent: str | None = None,
    after: tuple[datetime, int] | None = None,
    limit: int = 50,
) -> list[tuple[tuple[datetime, int], dict[str, Any]]]:
    """Newest first, each with its keyset position ``(started_at, id)``; at most ``limit + 1`` rows."""
    rows = await conn.fetch(
        CALL_SELECT
        + """
        WHERE c.account_id = $1
          AND ($2::bigint IS NULL OR c.channel_id = $2)
          AND ($3::bigint IS NULL OR c.conversation_id = $3)
          AND ($4::text IS NULL OR c.status = $4)
          AND ($5::text IS NULL OR c.direction = $5)
          AND ($6::text IS NULL OR c.agent = $6)
          AND ($7::timestamptz IS NULL OR (c.started_at, c.id) < ($7::timestamptz, $8::bigint))
        ORDER BY c.started_at DESC, c.id DESC
        LIMIT $9""",
        account_id, channel_id, conversation_id, status, direction, agent,
        after[0] if after else None, after[1] if after else None, limit + 1,
    )
    return [((r["started_at"], r["id"]), call_from_row(r)) for r in rows]


def _seconds(later: datetime, earlier: datetime) -> int:
    return max(0, int((later - earlier).total_seconds() + 0.5))


def _merge(before: dict[str, Any], snap: CallSnapshot) -> dict[str, Any]:
    status = max(CallStatus(before["status"]), snap.status, key=_RANK.__getitem__)
    answered_at = before["answered_at"] or snap.answered_at
    ended = status == CallStatus.ENDED
    ended_at = before["ended_at"] or (snap.ended_at if ended else None)
    if ended and ended_at is None:
        ended_at = snap.ended_at or snap.started_at
    started_at = before["started_at"] or snap.started_at
    disposition = before["disposition"]
    if ended:
        if answered_at is not None:
            disposition = CallDisposition.ANSWERED
        elif snap.status == CallStatus.ENDED and snap.disposition is not None:
            disposition = snap.disposition  # a late OriginateResponse may refine it
        disposition = disposition or CallDisposition.FAILED
    was_ended = before["status"] == CallStatus.ENDED
    return {
        "status": str(status),
        "disposition": str(disposition) if disposition else None,
        # Frozen once ended: a replayed older snapshot must not move the agent back.
        "agent": before["agent"] if was_ended else (snap.agent or before["agent"]),
        "external_id": before["external_id"] or snap.external_id,
        "originate_id": before["originate_id"] or snap.originate_id,
        "from_number": before["from_number"] or snap.from_number,
        "to_number": before["to_number"] or snap.to_number,
        "caller_name": before["caller_name"] if was_ended else (snap.caller_name or before["caller_name"]),
        "started_at": started_at,
        "answered_at": answered_at,
        "ended_at": ended_at,
        "duration": _seconds(ended_at, started_at) if ended and ended_at else None,
        "billsec": (_seconds(ended_at, answered_at) if answered_at else 0) if ended and ended_at else None,
        "hangup_cause": before["hangup_cause"] if was_ended and before["hangup_cause"] else (
            snap.hangup_cause or before["hangup_cause"]
        ),
    }


def contact_for(snap: CallSnapshot) -> ContactRef | None:
    """The customer of a call: the caller (inbound) or who we called (outbound); none for internal calls."""
    if snap.direction == CallDirection.INBOUND:
        number, name = snap.from_number, snap.caller_name
    elif snap.direction == CallDirection.OUTBOUND:
        number, name = snap.to_number, None
    else:
        return None
    if not number or not _PHONE.fullmatch(number):
        return None
    return ContactRef(external_id=number, name=name, phone=number)


async def _find(conn: asyncpg.Connection, channel_id: int, snap: CallSnapshot) -> asyncpg.Record | None:
    ids = [i for i in (snap.originate_id, snap.external_id) if i]
    return await conn.fetchrow(
        """SELECT * FROM calls WHERE channel_id = $1
             AND (originate_id = ANY($2::text[]) OR external_id = ANY($2::text[]))
           ORDER BY (originate_id IS NULL), id LIMIT 1 FOR UPDATE""",
        channel_id,
        ids,
    )


async def _insert(
    conn: asyncpg.Connection, channel: ChannelRow, snap: CallSnapshot
) -> tuple[int | None, list[PendingEvent]]:
    events: list[PendingEvent] = []
    conversation_id = contact_id = None
    contact = contact_for(snap)
    if contact is not None:
        thread = await thread_for(
            conn, channel=channel, contact=contact, at=snap.started_at, inbound=snap.direction == CallDirection.INBOUND
        )
        conversation_id, contact_id, events = thread.conversation_id, thread.contact_id, thread.events
    merged = _merge(dict.fromkeys(("status", "disposition", "agent", "external_id", "originate_id", "from_number",
                                   "to_number", "caller_name", "started_at", "answered_at", "ended_at",
                                   "hangup_cause"), None) | {"status": "ringing"}, snap)
    call_id = await conn.fetchval(
        f"""INSERT INTO calls (account_id, channel_id, conversation_id, contact_id, direction, {", ".join(_MERGED)})
            VALUES ($1, $2, $3, $4, $5, {", ".join(f"${i}" for i in range(6, 6 + len(_MERGED)))})
            ON CONFLICT DO NOTHING RETURNING id""",
        channel.account_id, channel.id, conversation_id, contact_id, str(snap.direction),
        *(merged[k] for k in _MERGED),
    )
    return call_id, events


async def _link_recording(conn: asyncpg.Connection, channel: ChannelRow, call_id: int, path: str) -> bool:
    name = posixpath.basename(path) or None
    mime = _AUDIO.get(posixpath.splitext(path)[1].lower()) or mimetypes.guess_type(path)[0]
    # Not fetched while MixMonitor still writes it: released when the call ends.
    media_id = await conn.fetchval(
        """INSERT INTO media_files (account_id, channel_id, mime_type, name, source_url, next_attempt_at)
           VALUES ($1, $2, $3, $4, $5, 'infinity') RETURNING id""",
        channel.account_id, channel.id, mime, name, path,
    )
    linked = await conn.fetchval(
        "UPDATE calls SET recording_media_id = $2 WHERE id = $1 AND recording_media_id IS NULL RETURNING id",
        call_id, media_id,
    )
    if linked is None:
        await conn.execute("DELETE FROM media_files WHERE id = $1", media_id)
    return linked is not None


async def apply_call(conn: asyncpg.Connection, *, channel: ChannelRow, snapshot: CallSnapshot) -> list[PendingEvent]:
    """Upsert one call from a snapshot; the events to log (empty when nothing changed)."""
    if not (snapshot.originate_id or snapshot.external_id):
        return []
    row = await _find(conn, channel.id, snapshot)
    events: list[PendingEvent] = []
    created = False
    if row is None:
        call_id, events = await _insert(conn, channel, snapshot)
        if call_id is None:  # inserted meanwhile by another writer: merge into theirs
            row = await _find(conn, channel.id, snapshot)
            if row is None:
                return []
        else:
            created = True
    if row is not None:
        call_id = row["id"]
        before = dict(row)
        merged = _merge(before, snapshot)
        changed = {k: v for k, v in merged.items() if v != before[k]}
        if changed:
            sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(changed, start=2))
            await conn.execute(f"UPDATE calls SET {sets}, updated_at = now() WHERE id = $1", call_id, *changed.values())
    assert call_id is not None
    touched = created or (row is not None and bool(changed))
    status = await conn.fetchrow("SELECT status, recording_media_id FROM calls WHERE id = $1", call_id)
    assert status is not None
    if snapshot.recording_path and status["recording_media_id"] is None:
        touched = await _link_recording(conn, channel, call_id, snapshot.recording_path) or touched
    if status["status"] == CallStatus.ENDED:
        await conn.execute(
            """UPDATE media_files SET next_attempt_at = now()
               WHERE id = (SELECT recording_media_id FROM calls WHERE id = $1)
                 AND status = 'pending' AND next_attempt_at = 'infinity'""",
            call_id,
        )
    if snapshot.events:
        inserted = await conn.fetchval(
            """WITH ins AS (
                   INSERT INTO call_events (account_id, call_id, type, data, occurred_at, dedup_key)
                   SELECT $1, $2, e.type, e.data, e.occurred_at, e.key
                   FROM unnest($3::text[], $4::jsonb[], $5::timestamptz[], $6::text[])
                        AS e(type, data, occurred_at, key)
                   ON CONFLICT (call_id, dedup_key) DO NOTHING RETURNING 1)
               SELECT count(*) FROM ins""",
            channel.account_id, call_id,
            [e.type for e in snapshot.events], [e.data for e in snapshot.events],
            [e.occurred_at for e in snapshot.events], [e.key for e in snapshot.events],
        )
        touched = touched or bool(inserted)
    if not touched:
        return events
    data = await call_json(conn, channel.account_id, call_id)
    ended_now = data["status"] == CallStatus.ENDED and (row is None or row["status"] != CallStatus.ENDED)
    if created:
        events.append(PendingEvent(EventName.CALL_CREATED, data["conversation_id"], data))
        if ended_now:
            events.append(PendingEvent(EventName.CALL_ENDED, data["conversation_id"], data))
    else:
        name = EventName.CALL_ENDED if ended_now else EventName.CALL_UPDATED
        events.append(PendingEvent(name, data["conversation_id"], data))
    return events


async def open_calls(conn: Conn, channel_id: int) -> list[CallSnapshot]:
    """Calls of a channel not ended yet, except click-to-calls still waiting to be placed."""
    rows = await conn.fetch(
        """SELECT c.* FROM calls c
           WHERE c.channel_id = $1 AND c.status <> 'ended'
             AND NOT EXISTS (SELECT 1 FROM call_originates o WHERE o.call_id = c.id AND o.status = 'queued')
           ORDER BY c.id""",
        channel_id,
    )
    return [
        CallSnapshot(
            external_id=r["external_id"],
            originate_id=r["originate_id"],
            direction=CallDirection(r["direction"]),
            from_number=r["from_number"],
            to_number=r["to_number"],
            caller_name=r["caller_name"],
            status=CallStatus(r["status"]),
            agent=r["agent"],
            started_at=r["started_at"],
            answered_at=r["answered_at"],
        )
        for r in rows
    ]
