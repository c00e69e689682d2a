"""Click-to-call requests (``call_originates``): from the API to whichever process holds the AMI lease.

1. ``request_click_to_call`` (API, any process): the call row (outbound,
   ringing, with the ``originate_id`` we chose), a ``queued`` request, and a
   ``NOTIFY igw_originate`` — all in the caller's transaction.
2. ``claim_next`` (lease holder): ``queued → sending``, committed BEFORE the
   Originate is written to the socket. A request is therefore placed at most
   once; if the process dies or the socket drops before Asterisk answers, the
   outcome is ``unknown`` and the request is never sent again (reconciliation
   then closes the call if Asterisk has no such channel).
3. ``finish``: ``accepted`` (Asterisk queued it), ``rejected`` (Response:
   Error), ``unknown``; or ``unclaim`` when nothing was written at all.
A request nobody picked up within ``max_age`` is ``expired``: a call placed
minutes after the click would surprise the agent more than an honest failure.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from inbox.calls import call_json, contact_for
from inbox.channels import ChannelRow
from inbox.eventlog import PendingEvent
from inbox.threading import thread_for
from schema.calls import CallSnapshot
from schema.enums import CallDirection, CallStatus, EventName

NOTIFY_CHANNEL = "igw_originate"


class OriginateStatus(StrEnum):
    """Mirrors the CHECK on ``call_originates.status`` (sql/0002_asterisk.sql)."""

    QUEUED = "queued"
    SENDING = "sending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    EXPIRED = "expired"


@dataclass(frozen=True)
class OriginateRequest:
    id: int
    account_id: int
    channel_id: int
    call_id: int
    originate_id: str
    agent: str
    to_number: str
    status: OriginateStatus
    created_at: datetime

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> OriginateRequest:
        return cls(r["id"], r["account_id"], r["channel_id"], r["call_id"], r["originate_id"], r["agent"],
                   r["to_number"], OriginateStatus(r["status"]), r["created_at"])


def new_originate_id() -> str:
    return f"gw-{uuid.uuid4().hex}"


async def request_click_to_call(
    conn: asyncpg.Connection, *, channel: ChannelRow, agent: str, to_number: str, at: datetime
) -> tuple[int, list[PendingEvent]]:
    """Create the call and its originate request; returns the call id and the events to log."""
    originate_id = new_originate_id()
    snap = CallSnapshot(external_id=None, originate_id=originate_id, direction=CallDirection.OUTBOUND,
                        from_number=agent, to_number=to_number, status=CallStatus.RINGING, agent=agent, started_at=at)
    events: list[PendingEvent] = []
    conversation_id = contact_id = None
    contact = contact_for(snap)
    if contact is not None:
        thread = await thread_for(conn, channel=channel, contact=contact, at=at, inbound=False)
        conversation_id, contact_id, events = thread.conversation_id, thread.contact_id, thread.events
    call_id: int = await conn.fetchval(
        """INSERT INTO calls (account_id, channel_id, conversation_id, contact_id, direction, from_number, to_number,
                              status, agent, originate_id, started_at)
           VALUES ($1, $2, $3, $4, 'outbound', $5, $6, 'ringing', $5, $7, $8) RETURNING id""",
        channel.account_id, channel.id, conversation_id, contact_id, agent, to_number, originate_id, at,
    )
    await conn.execute(
        """INSERT INTO call_events (account_id, call_id, type, data, occurred_at, dedup_key)
           VALUES ($1, $2, 'originate', $3, $4, $5)""",
        channel.account_id, call_id, {"result": "requested", "agent": agent, "to_number": to_number}, at,
        f"originate-requested:{originate_id}",
    )
    await conn.execute(
        """INSERT INTO call_originates (account_id, channel_id, call_id, originate_id, agent, to_number)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        channel.account_id, channel.id, call_id, originate_id, agent, to_number,
    )
    await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, str(channel.id))
    data = await call_json(conn, channel.account_id, call_id)
    events.append(PendingEvent(EventName.CALL_CREATED, data["conversation_id"], data))
    return call_id, events


async def claim_next(conn: asyncpg.Connection | asyncpg.Pool, channel_id: int, node_id: str,
                     max_age: float) -> OriginateRequest | None:
    """Take the oldest queued request of a channel (``sending``); commit before placing it."""
    row = await conn.fetchrow(
        """UPDATE call_originates SET status = 'sending', node_id = $2, sent_at = now()
           WHERE id = (SELECT id FROM call_originates
                       WHERE channel_id = $1 AND status = 'queued'
                         AND created_at > now() - make_interval(secs => $3)
                       ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
           RETURNING *""",
        channel_id, node_id, max_age,
    )
    return OriginateRequest.from_record(row) if row else None


async def expire_stale(conn: asyncpg.Connection | asyncpg.Pool, channel_id: int,
                       max_age: float) -> list[OriginateRequest]:
    rows = await conn.fetch(
        """UPDATE call_originates SET status = 'expired', finished_at = now(),
               error = 'not placed: the AMI connection was unavailable for too long'
           WHERE channel_id = $1 AND status = 'queued' AND created_at <= now() - make_interval(secs => $2)
           RETURNING *""",
        channel_id, max_age,
    )
    return [OriginateRequest.from_record(r) for r in rows]


async def finish(conn: asyncpg.Connection | asyncpg.Pool, request_id: int, status: OriginateStatus,
                 error: str | None = None) -> None:
    await conn.execute(
        """UPDATE call_originates SET status = $2, error = $3, finished_at = now()
           WHERE id = $1 AND status IN ('sending', 'accepted')""",
        request_id, str(status), error,
    )


async def unclaim(conn: asyncpg.Connection | asyncpg.Pool, request_id: int) -> None:
    """Nothing was written to Asterisk: the request may be taken again."""
    await conn.execute(
        """UPDATE call_originates SET status = 'queued', node_id = NULL, sent_at = NULL
           WHERE id = $1 AND status = 'sending'""",
        request_id,
    )


async def in_flight(conn: asyncpg.Connection | asyncpg.Pool, channel_id: int) -> list[OriginateRequest]:
    """Requests placed (or maybe placed) whose call is still open: the tracker must recognise their channels."""
    rows = await conn.fetch(
        """SELECT o.* FROM call_originates o JOIN calls c ON c.id = o.call_id
           WHERE o.channel_id = $1 AND o.status IN ('sending', 'accepted', 'unknown') AND c.status <> 'ended'
           ORDER BY o.id""",
        channel_id,
    )
    return [OriginateRequest.from_record(r) for r in rows]


async def mark_unknown(conn: asyncpg.Connection | asyncpg.Pool, channel_id: int, originate_ids: list[str]) -> None:
    """Requests whose call reconciliation closed: if still ``sending``, nobody will ever learn more."""
    await conn.execute(
        """UPDATE call_originates SET status = 'unknown', finished_at = now(),
               error = 'the AMI connection was lost before Asterisk answered; not retried'
           WHERE channel_id = $1 AND originate_id = ANY($2::text[]) AND status = 'sending'""",
        channel_id, originate_ids,
    )
