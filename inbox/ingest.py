"""Ingest: provider payloads in, committed rows and events out (DESIGN §5).

``ingest_work`` is everything for one provider request: the raw payload is
stored in ``inbound_events`` (unique per channel + dedup key, which makes
re-deliveries no-ops), every normalised event is applied, and the resulting
events are staged for the log. ``inbox.group_commit`` runs it in a savepoint
of a batch transaction shared with other concurrent requests
(``ingest_payload`` runs one alone). The caller acknowledges the provider only
after its batch committed, and publishes ``IngestResult.events``.

A payload that authenticated but cannot be normalised or applied is kept as a
dead letter (status ``failed``) with the error; ``replay_failed`` re-processes
dead letters after a fix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import asyncpg

from inbox.channels import ChannelRow, find_by_provider_key, get_channel_any_account
from inbox.db import acquire
from inbox.eventlog import EventRecord, PendingEvent, append
from inbox.group_commit import RETRYABLE, Committed, Staged, Work, commit_batch
from inbox.identities import apply_identity_change
from inbox.messages import apply_message, apply_pending, apply_unreachable, apply_update
from schema.enums import InboundStatus
from schema.events import (
    CallChange,
    ContactUnreachable,
    IdentityChange,
    InboundMessage,
    NormalizedEvent,
    ParsedPayload,
    ParseError,
)
from schema.text import storable, storable_text

__all__ = [
    "IngestResult",
    "apply_events",
    "apply_pending",
    "apply_work",
    "ingest_payload",
    "ingest_result",
    "ingest_work",
    "replay_failed",
]

log = logging.getLogger(__name__)

# Connection-level failures: never turned into dead letters (the provider must retry).
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)


class RoutingError(ValueError):
    """An event names a provider identity this account has no channel for."""


@dataclass(frozen=True)
class IngestResult:
    inbound_event_id: int | None
    status: InboundStatus | None
    duplicate: bool
    events: list[EventRecord]
    error: str | None = None


async def _route(conn: asyncpg.Connection, channel: ChannelRow, key: str | None) -> ChannelRow:
    if key is None or key == channel.provider_key:
        return channel
    target = await find_by_provider_key(conn, channel.account_id, channel.type, key)
    if target is None:
        raise RoutingError(f"no {channel.type} channel with provider id {key!r} in this account")
    return target


async def _apply_one(conn: asyncpg.Connection, channel: ChannelRow, ev: NormalizedEvent) -> list[PendingEvent]:
    # Provider text may hold what PostgreSQL refuses (NUL, lone surrogates): replaced, so the
    # message or call is stored instead of dead-lettered (one place for every channel type).
    ev = storable(ev)
    if isinstance(ev, InboundMessage):
        return await apply_message(conn, channel, ev)
    if isinstance(ev, ContactUnreachable):
        return await apply_unreachable(conn, channel, ev)
    if isinstance(ev, IdentityChange):
        return await apply_identity_change(conn, channel, ev)
    if isinstance(ev, CallChange):
        from inbox.calls import apply_call  # the telephony part of the domain

        return await apply_call(conn, channel=channel, snapshot=ev.call)
    return await apply_update(conn, channel, ev)


async def apply_events(
    conn: asyncpg.Connection, *, channel: ChannelRow, events: Sequence[NormalizedEvent]
) -> list[EventRecord]:
    """Apply events in the caller's transaction and log what changed (seqs taken last)."""
    pending: list[PendingEvent] = []
    for ev in events:
        target = await _route(conn, channel, ev.channel_key)
        pending.extend(await _apply_one(conn, target, ev))
    return await append(conn, channel.account_id, pending)


def apply_work(*, channel: ChannelRow, events: Sequence[NormalizedEvent]) -> Work:
    """``apply_events`` as a unit of a group commit: its value is None, its records the logged events."""

    async def work(conn: asyncpg.Connection) -> Staged[None]:
        pending: list[PendingEvent] = []
        for ev in events:
            target = await _route(conn, channel, ev.channel_key)
            pending.extend(await _apply_one(conn, target, ev))
        return Staged(None, channel.account_id, pending)

    return work


async def _process(
    conn: asyncpg.Connection, channel: ChannelRow, parsed: ParsedPayload | ParseError
) -> tuple[InboundStatus, str | None, list[PendingEvent]]:
    """Apply a parsed payload; the caller logs the returned events last, just before commit."""
    if isinstance(parsed, ParseError):
        return InboundStatus.FAILED, storable_text(str(parsed)) or "payload could not be normalised", []
    if not parsed.events and not parsed.errors:
        return InboundStatus.IGNORED if parsed.ignored else InboundStatus.PROCESSED, None, []
    # Route and apply each event in its own savepoint: one unroutable or broken
    # change dead-letters the payload without losing the others (replay is idempotent).
    pending: list[PendingEvent] = []
    # Parts the adapter could not read fail the payload (replayable) without losing their neighbours.
    errors: list[str] = list(parsed.errors)
    for ev in parsed.events:
        try:
            async with conn.transaction():
                target = await _route(conn, channel, ev.channel_key)
                pending.extend(await _apply_one(conn, target, ev))
        except (*_TRANSPORT_ERRORS, *RETRYABLE):  # not the payload's fault: the batch is retried
            raise
        except Exception as exc:  # a bug or an unexpected payload shape: keep it as a dead letter
            log.warning("inbound event on channel %s could not be applied: %r", channel.id, exc)
            errors.append(f"{type(exc).__name__}: {exc}")
    if errors:
        return InboundStatus.FAILED, storable_text("; ".join(errors)), pending
    return InboundStatus.PROCESSED, None, pending


def ingest_work(
    *, channel: ChannelRow, payload: str, dedup_key: str | None, parsed: ParsedPayload | ParseError
) -> Work:
    """One provider request as a unit of a group commit; ``ingest_result`` makes its answer."""

    async def work(conn: asyncpg.Connection) -> Staged[IngestResult]:
        # Stored as processed up front: the common case then needs no second statement.
        inbound_id = await conn.fetchval(
            """INSERT INTO inbound_events (account_id, channel_id, dedup_key, status, payload, processed_at)
               VALUES ($1, $2, $3, 'processed', $4, now())
               ON CONFLICT (channel_id, dedup_key) DO NOTHING RETURNING id""",
            channel.account_id,
            channel.id,
            dedup_key,
            payload,
        )
        if inbound_id is None:
            return Staged(IngestResult(None, None, True, []), channel.account_id)
        status, error, pending = await _process(conn, channel, parsed)
        if status != InboundStatus.PROCESSED or error is not None:
            await conn.execute(
                "UPDATE inbound_events SET status = $2, error = $3 WHERE id = $1", inbound_id, str(status), error
            )
        return Staged(IngestResult(inbound_id, status, False, [], error), channel.account_id, pending)

    return work


def ingest_result(committed: Committed[IngestResult]) -> IngestResult:
    return replace(committed.value, events=committed.records)


async def ingest_payload(
    pool: asyncpg.Pool,
    *,
    channel: ChannelRow,
    payload: str,
    dedup_key: str | None,
    parsed: ParsedPayload | ParseError,
) -> IngestResult:
    """Ingest one request in a transaction of its own (the gateway batches them: ``gateway.pipeline``)."""
    (outcome,) = await commit_batch(
        pool, [ingest_work(channel=channel, payload=payload, dedup_key=dedup_key, parsed=parsed)]
    )
    if isinstance(outcome, BaseException):
        raise outcome
    return ingest_result(outcome)


Parser = Callable[[ChannelRow, str], ParsedPayload]


async def replay_failed(
    pool: asyncpg.Pool, parse: Parser, *, account_id: int | None = None, ids: Sequence[int] | None = None
) -> list[IngestResult]:
    """Re-process dead letters with the current code. Idempotent: applying twice changes nothing."""
    rows = await pool.fetch(
        """SELECT id, channel_id FROM inbound_events
           WHERE status = 'failed' AND ($1::bigint IS NULL OR account_id = $1)
             AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))
           ORDER BY id""",
        account_id,
        list(ids) if ids is not None else None,
    )
    results: list[IngestResult] = []
    for row in rows:
        async with acquire(pool) as conn, conn.transaction():
            locked = await conn.fetchrow(
                "SELECT payload FROM inbound_events WHERE id = $1 AND status = 'failed' FOR UPDATE SKIP LOCKED",
                row["id"],
            )
            channel = await get_channel_any_account(conn, row["channel_id"])
            if locked is None or channel is None:
                continue
            parsed: ParsedPayload | ParseError
            try:
                parsed = parse(channel, locked["payload"])
            except ParseError as exc:
                parsed = exc
            status, error, pending = await _process(conn, channel, parsed)
            await conn.execute(
                """UPDATE inbound_events SET status = $2, error = $3, processed_at = now(),
                       attempts = attempts + 1 WHERE id = $1""",
                row["id"],
                str(status),
                error,
            )
            records = await append(conn, channel.account_id, pending)
        results.append(IngestResult(row["id"], status, False, records, error))
    return results
