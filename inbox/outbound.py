"""The outbound queue: agent replies become a ``pending`` message plus an ``outbound_jobs`` row,
and the worker moves them to ``sent`` or ``failed`` through the functions here.

Life of a job::

    queued --claim--> in_flight --sent-------------------------> sent
       ^                  |------transient (attempts left)--> queued (later)
       |                  |------transient (no attempts left) / permanent --> failed
       |                  '------lease expired (worker died) --> failed (delivery_unknown)

At most once: the ``started`` attempt is committed before the provider is
called. If the worker dies between the provider's answer and our commit, the
job stays ``in_flight`` with a ``started`` attempt and nobody knows whether the
provider accepted the message. Sending again could deliver it twice (a
customer receiving the same reply twice, or a payment link twice, is worse
than an agent seeing "delivery unknown" and deciding), so recovery marks that
attempt ``unknown`` and fails the message with ``delivery_unknown``. Should the
send's outcome still arrive later (a very slow provider outliving the lease),
a success replaces the unknown verdict with ``sent``.

Every function runs in the caller's connection and opens its own transaction
(a savepoint when the caller is already in one); those that change a message
return the committed ``EventRecord``s for the caller to publish.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from inbox import eventlog
from inbox.channels import ChannelRow
from inbox.errors import InboxError, NotFound
from inbox.eventlog import EventRecord, PendingEvent
from inbox.messages import apply_pending
from inbox.views import conversation_json, message_json
from schema.enums import ChannelType, EventName, MessageDirection, MessageStatus, MessageType

# Channel types that carry text messages (Asterisk carries calls only).
MESSAGING_TYPES = frozenset({ChannelType.WHATSAPP, ChannelType.TELEGRAM})

DELIVERY_UNKNOWN = "delivery_unknown"


class OutboundRejected(InboxError):
    """The request cannot become an outbound message (no recipient, wrong channel type…)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Enqueued:
    message_id: int
    created: bool  # False: an earlier request with the same Idempotency-Key made it
    events: list[EventRecord]


async def enqueue_message(
    conn: asyncpg.Connection,
    *,
    account_id: int,
    conversation_id: int,
    text: str,
    author: str | None,
    idempotency_key: str | None = None,
    reply_to_id: int | None = None,
    max_attempts: int = 8,
) -> Enqueued:
    """Create the ``pending`` message, its job and its events in one transaction."""
    async with conn.transaction():
        conv = await conn.fetchrow(
            """SELECT c.id, c.channel_id, c.contact_id, ch.type, ch.deleted_at
               FROM conversations c JOIN channels ch ON ch.id = c.channel_id
               WHERE c.id = $1 AND c.account_id = $2 FOR UPDATE OF c""",
            conversation_id,
            account_id,
        )
        if conv is None:
            raise NotFound(f"conversation {conversation_id} not found")
        # Checked under the conversation lock: a concurrent twin with the same key
        # commits first and is found here.
        if idempotency_key is not None:
            existing = await _by_idempotency_key(conn, account_id, idempotency_key, conversation_id, text)
            if existing is not None:
                return Enqueued(existing, False, [])
        if conv["deleted_at"] is not None:
            raise OutboundRejected("channel_deleted", "the conversation's channel was deleted")
        if ChannelType(conv["type"]) not in MESSAGING_TYPES:
            raise OutboundRejected("channel_cannot_send", f"{conv['type']} channels carry calls, not messages")
        has_identity = await conn.fetchval(
            "SELECT 1 FROM contact_identities WHERE account_id = $1 AND contact_id = $2 AND channel_type = $3 LIMIT 1",
            account_id,
            conv["contact_id"],
            conv["type"],
        )
        if not has_identity:
            raise OutboundRejected("no_recipient", f"the contact has no {conv['type']} identity to send to")
        if reply_to_id is not None:
            same_conversation = await conn.fetchval(
                "SELECT 1 FROM messages WHERE id = $1 AND account_id = $2 AND conversation_id = $3",
                reply_to_id,
                account_id,
                conversation_id,
            )
            if not same_conversation:
                raise OutboundRejected("invalid_reply_to", "reply_to_id is not a message of this conversation")

        message_id = await conn.fetchval(
            """INSERT INTO messages (account_id, conversation_id, channel_id, direction, type, text, status,
                                     reply_to_id, author, idempotency_key)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               ON CONFLICT (account_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
               RETURNING id""",
            account_id,
            conversation_id,
            conv["channel_id"],
            str(MessageDirection.OUTBOUND),
            str(MessageType.TEXT),
            text,
            str(MessageStatus.PENDING),
            reply_to_id,
            author,
            idempotency_key,
        )
        if message_id is None:
            # The key was used concurrently for another conversation; that insert won.
            assert idempotency_key is not None
            existing = await _by_idempotency_key(conn, account_id, idempotency_key, conversation_id, text)
            assert existing is not None
            return Enqueued(existing, False, [])
        await conn.execute(
            """INSERT INTO outbound_jobs (account_id, message_id, channel_id, max_attempts)
               VALUES ($1, $2, $3, $4)""",
            account_id,
            message_id,
            conv["channel_id"],
            max_attempts,
        )
        # First response time counts from the first inbound message to the
        # agent's first reply (the reply, not its delivery, is the agent's act).
        await conn.execute(
            """UPDATE conversations SET last_activity_at = now(), updated_at = now(),
                   first_response_at = CASE WHEN first_inbound_at IS NULL THEN first_response_at
                                            ELSE COALESCE(first_response_at, now()) END
               WHERE id = $1""",
            conversation_id,
        )
        message = await message_json(conn, account_id, message_id)
        conversation = await conversation_json(conn, account_id, conversation_id)
        records = await eventlog.append(
            conn,
            account_id,
            [
                PendingEvent(EventName.MESSAGE_CREATED, conversation_id, message),
                PendingEvent(EventName.CONVERSATION_UPDATED, conversation_id, conversation),
            ],
        )
    return Enqueued(message_id, True, records)


async def _by_idempotency_key(
    conn: asyncpg.Connection, account_id: int, key: str, conversation_id: int, text: str
) -> int | None:
    row = await conn.fetchrow(
        "SELECT id, conversation_id, text FROM messages WHERE account_id = $1 AND idempotency_key = $2",
        account_id,
        key,
    )
    if row is None:
        return None
    if row["conversation_id"] != conversation_id or row["text"] != text:
        raise OutboundRejected(
            "idempotency_key_reused", "this Idempotency-Key was already used for a different message"
        )
    message_id: int = row["id"]
    return message_id


# --- the worker's side -------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedJob:
    job_id: int
    account_id: int
    message_id: int
    conversation_id: int
    attempt: int
    max_attempts: int
    locked_by: str
    channel: ChannelRow | None  # None: the channel was deleted since the message was queued
    to: str | None  # the contact's newest identity on the channel type; None if it has none
    text: str | None
    reply_to_external_id: str | None
    identities: tuple[str, ...] = ()  # all of them, newest first
    thread_id: str | None = None


async def claim_next(conn: asyncpg.Connection, node_id: str) -> ClaimedJob | None:
    """Take the next due job and commit its ``started`` attempt; None when nothing is due.

    One job per claim: a claimed job is sent right away, so a worker that stops
    never leaves a batch of claimed-but-unsent jobs behind to be judged unknown.
    """
    async with conn.transaction():
        job = await conn.fetchrow(
            """WITH due AS (
                   SELECT id FROM outbound_jobs
                   WHERE status = 'queued' AND next_attempt_at <= now()
                   ORDER BY next_attempt_at, id LIMIT 1
                   FOR UPDATE SKIP LOCKED)
               UPDATE outbound_jobs j
               SET status = 'in_flight', attempts = j.attempts + 1, locked_by = $1,
                   locked_at = now(), updated_at = now()
               FROM due WHERE j.id = due.id
               RETURNING j.id, j.account_id, j.message_id, j.channel_id, j.attempts, j.max_attempts""",
            node_id,
        )
        if job is None:
            return None
        await conn.execute(
            "INSERT INTO outbound_attempts (account_id, job_id, attempt) VALUES ($1, $2, $3)",
            job["account_id"],
            job["id"],
            job["attempts"],
        )
        detail = await conn.fetchrow(
            """SELECT m.conversation_id, m.text, COALESCE(r.external_id, m.reply_to_external_id) AS reply_ext,
                      (SELECT array_agg(ci.external_id ORDER BY ci.id DESC) FROM contact_identities ci
                       WHERE ci.account_id = c.account_id AND ci.contact_id = c.contact_id
                             AND ci.channel_type = ch.type) AS identities,
                      -- A reply stays in the sub-thread (forum topic) the customer wrote in.
                      COALESCE(r.extra->>'thread_id',
                               (SELECT i.extra->>'thread_id' FROM messages i
                                WHERE i.conversation_id = m.conversation_id AND i.direction = 'inbound'
                                ORDER BY i.created_at DESC, i.id DESC LIMIT 1)) AS thread_id,
                      ch.deleted_at AS channel_deleted_at,
                      ch.id AS ch_id, ch.account_id AS ch_account_id, ch.type AS ch_type, ch.name AS ch_name,
                      ch.config AS ch_config, ch.secrets_enc AS ch_secrets, ch.provider_key AS ch_provider_key,
                      ch.state AS ch_state, ch.created_at AS ch_created_at, ch.updated_at AS ch_updated_at
               FROM messages m
               JOIN conversations c ON c.id = m.conversation_id
               JOIN channels ch ON ch.id = m.channel_id
               LEFT JOIN messages r ON r.id = m.reply_to_id
               WHERE m.id = $1""",
            job["message_id"],
        )
    assert detail is not None, "a job's message is deleted with it (ON DELETE CASCADE)"
    identities = tuple(detail["identities"] or ())
    channel = None
    if detail["channel_deleted_at"] is None:
        channel = ChannelRow(
            detail["ch_id"], detail["ch_account_id"], ChannelType(detail["ch_type"]), detail["ch_name"],
            detail["ch_config"], detail["ch_secrets"], detail["ch_provider_key"], detail["ch_state"],
            detail["ch_created_at"], detail["ch_updated_at"],
        )
    return ClaimedJob(
        job_id=job["id"],
        account_id=job["account_id"],
        message_id=job["message_id"],
        conversation_id=detail["conversation_id"],
        attempt=job["attempts"],
        max_attempts=job["max_attempts"],
        locked_by=node_id,
        channel=channel,
        to=identities[0] if identities else None,
        text=detail["text"],
        reply_to_external_id=detail["reply_ext"],
        identities=identities,
        thread_id=detail["thread_id"],
    )


async def _still_ours(conn: asyncpg.Connection, job: ClaimedJob, status: str, last_error: str | None,
                      next_attempt_at: datetime | None = None) -> bool:
    """Move our in-flight job on; False if recovery took it from us meanwhile."""
    updated = await conn.fetchval(
        """UPDATE outbound_jobs SET status = $4, last_error = $5, updated_at = now(),
               next_attempt_at = COALESCE($6, next_attempt_at)
           WHERE id = $1 AND status = 'in_flight' AND locked_by = $2 AND attempts = $3
           RETURNING id""",
        job.job_id,
        job.locked_by,
        job.attempt,
        status,
        last_error,
        next_attempt_at,
    )
    return updated is not None


async def _finish_attempt(conn: asyncpg.Connection, job: ClaimedJob, outcome: str, *, code: str | None = None,
                          message: str | None = None, external_id: str | None = None) -> None:
    await conn.execute(
        """UPDATE outbound_attempts SET outcome = $3, error_code = $4, error_message = $5,
               external_id = COALESCE($6, external_id), finished_at = now()
           WHERE job_id = $1 AND attempt = $2""",
        job.job_id,
        job.attempt,
        outcome,
        code,
        message,
        external_id,
    )


async def _message_event(conn: asyncpg.Connection, account_id: int, message_id: int) -> PendingEvent:
    data = await message_json(conn, account_id, message_id)
    return PendingEvent(EventName.MESSAGE_UPDATED, data["conversation_id"], data)


async def record_sent(
    conn: asyncpg.Connection, job: ClaimedJob, external_id: str, sent_at: datetime | None
) -> list[EventRecord]:
    """The provider accepted the message: ``sent`` with its provider id, then any
    status updates that raced ahead of us (parked in ``pending_updates``)."""
    assert job.channel is not None
    async with conn.transaction():
        ours = await _still_ours(conn, job, "sent", None)
        await _finish_attempt(conn, job, "sent", external_id=external_id)
        if not ours:
            # Recovery judged this attempt unknown while the provider was still
            # answering; now we know better. Anything else (a retry in flight) is left alone.
            await conn.execute(
                "UPDATE outbound_jobs SET status = 'sent', updated_at = now() WHERE id = $1 AND status = 'failed'",
                job.job_id,
            )
        # The same lock ingest takes per (channel, external_id): a provider echo
        # or status for this id is applied either wholly before or after us.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"msg:{job.channel.id}:{external_id}"
        )
        taken = await conn.fetchval(
            "SELECT id FROM messages WHERE channel_id = $1 AND external_id = $2 AND id <> $3",
            job.channel.id,
            external_id,
            job.message_id,
        )
        changed = await conn.fetchval(
            """UPDATE messages SET status = 'sent', external_id = $3, sent_at = COALESCE(sent_at, $4),
                   error_code = NULL, error_message = NULL, failed_at = NULL
               WHERE id = $1 AND account_id = $2
                 AND (status = 'pending' OR (status = 'failed' AND error_code = $5))
               RETURNING id""",
            job.message_id,
            job.account_id,
            None if taken else external_id,
            sent_at or datetime.now(UTC),
            DELIVERY_UNKNOWN,
        )
        events: list[PendingEvent] = []
        if changed:
            events.append(await _message_event(conn, job.account_id, job.message_id))
            if not taken:
                events.extend(await apply_pending(conn, job.channel, job.message_id))
        return await eventlog.append(conn, job.account_id, events)


async def record_failure(
    conn: asyncpg.Connection,
    job: ClaimedJob,
    *,
    code: str,
    message: str,
    transient: bool,
    retry_in: float | None = None,
) -> list[EventRecord]:
    """A failed attempt: rescheduled after ``retry_in`` seconds when transient and
    attempts are left, else the message fails with the provider's code and reason."""
    outcome = "transient_error" if transient else "permanent_error"
    retry = transient and retry_in is not None and job.attempt < job.max_attempts
    async with conn.transaction():
        if retry:
            assert retry_in is not None
            next_at = await conn.fetchval("SELECT now() + make_interval(secs => $1)", float(retry_in))
            ours = await _still_ours(conn, job, "queued", f"{code}: {message}", next_at)
        else:
            ours = await _still_ours(conn, job, "failed", f"{code}: {message}")
        await _finish_attempt(conn, job, outcome, code=code, message=message)
        if not ours or retry:
            return []
        if transient:
            message = f"{message} (gave up after {job.attempt} attempts)"
        return await _fail_message(conn, job.account_id, job.message_id, code, message)


async def _fail_message(
    conn: asyncpg.Connection, account_id: int, message_id: int, code: str, reason: str
) -> list[EventRecord]:
    changed = await conn.fetchval(
        """UPDATE messages SET status = 'failed', error_code = $3, error_message = $4, failed_at = now()
           WHERE id = $1 AND account_id = $2 AND status = 'pending' RETURNING id""",
        message_id,
        account_id,
        code,
        reason,
    )
    if not changed:
        return []
    return await eventlog.append(conn, account_id, [await _message_event(conn, account_id, message_id)])


async def recover_stale(conn: asyncpg.Connection, lease_seconds: float, limit: int = 100) -> list[EventRecord]:
    """Fail jobs whose worker vanished mid-send (see the module docstring for why not resend)."""
    records: list[EventRecord] = []
    async with conn.transaction():
        rows = await conn.fetch(
            """UPDATE outbound_jobs j SET status = 'failed', updated_at = now(),
                   last_error = 'delivery_unknown: worker lost while sending'
               WHERE j.id IN (SELECT id FROM outbound_jobs
                              WHERE status = 'in_flight' AND locked_at < now() - make_interval(secs => $1)
                              ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
               RETURNING j.id, j.account_id, j.message_id, j.attempts, j.locked_by""",
            float(lease_seconds),
            limit,
        )
        by_account: dict[int, list[asyncpg.Record]] = defaultdict(list)
        for row in rows:
            by_account[row["account_id"]].append(row)
        for account_id in sorted(by_account):
            for row in by_account[account_id]:
                reason = (
                    f"the gateway worker ({row['locked_by']}) stopped while handing attempt {row['attempts']} "
                    "to the provider, so it is unknown whether the message was delivered; it is not sent "
                    "again automatically to avoid a duplicate. Send it again if it did not arrive."
                )
                await conn.execute(
                    """UPDATE outbound_attempts SET outcome = 'unknown', error_code = $3, error_message = $4,
                           finished_at = now()
                       WHERE job_id = $1 AND attempt = $2 AND outcome = 'started'""",
                    row["id"],
                    row["attempts"],
                    DELIVERY_UNKNOWN,
                    "worker lost between the provider call and recording its outcome",
                )
                records.extend(await _fail_message(conn, account_id, row["message_id"], DELIVERY_UNKNOWN, reason))
    return records


def retry_delay(
    attempt: int, *, base: float, cap: float, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """Seconds before the next try after ``attempt`` (1-based) failed transiently.

    Exponential with "equal jitter" (half fixed, half random) so a burst of
    failures does not retry in lockstep; a provider's ``retry_after`` wins,
    with a little jitter on top so everything it throttled does not come back at once.
    """
    rng = rng or random.Random()
    if retry_after is not None and retry_after >= 0:
        return float(retry_after) * rng.uniform(1.0, 1.1)
    exp = min(cap, base * 2.0 ** max(0, attempt - 1))
    return float(exp / 2 + rng.uniform(0, exp / 2))

