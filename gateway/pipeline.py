"""Commit, then publish: the only way provider traffic enters the inbox."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from gateway.context import AppContext
from gateway.logs import EVENT_SEQ
from gateway.metrics import EVENTS_PUBLISHED, INBOUND, INGEST_SECONDS
from inbox.channels import ChannelRow
from inbox.db import acquire
from inbox.eventlog import EventRecord
from inbox.ingest import IngestResult, apply_events, ingest_payload
from schema.events import NormalizedEvent, ParsedPayload, ParseError

log = logging.getLogger(__name__)


async def ingest(
    ctx: AppContext,
    *,
    channel: ChannelRow,
    payload: str,
    dedup_key: str | None,
    parsed: ParsedPayload | ParseError,
) -> IngestResult:
    started = time.perf_counter()
    result = await ingest_payload(ctx.pool, channel=channel, payload=payload, dedup_key=dedup_key, parsed=parsed)
    INGEST_SECONDS.labels(channel.type).observe(time.perf_counter() - started)
    INBOUND.labels(channel.type, "duplicate" if result.duplicate else str(result.status)).inc()
    await publish(ctx, result.events)
    return result


async def apply_and_publish(
    ctx: AppContext, *, channel: ChannelRow, events: Sequence[NormalizedEvent]
) -> list[EventRecord]:
    async with acquire(ctx.pool) as conn, conn.transaction():
        records = await apply_events(conn, channel=channel, events=events)
    await publish(ctx, records)
    return records


async def publish(ctx: AppContext, records: Sequence[EventRecord]) -> None:
    """Fan committed events out; call only after the commit.

    A broker failure does not undo the commit and must not fail the request
    that made it (the provider would redeliver what is already stored): the
    events are in the log, and subscribers fill the gap from it.
    """
    if not records:
        return
    EVENT_SEQ.set(records[-1].seq)
    try:
        await ctx.broker.publish(records)
    except Exception:
        log.exception("publishing %d committed event(s) failed", len(records))
    else:
        EVENTS_PUBLISHED.inc(len(records))
