"""Commit, then publish: the only way provider traffic enters the inbox.

Concurrent writers of one process are committed together (group commit): one
``Batcher`` per process gathers whatever units of work are waiting while the
previous batch commits, ``inbox.group_commit`` runs them in one transaction
(one seq update per account, one COMMIT), the batch's events are published in
seq order, and only then is each caller answered with its own outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, cast

from gateway.context import AppContext
from gateway.logs import EVENT_SEQ
from gateway.metrics import COMMIT_BATCH_SIZE, EVENTS_PUBLISHED, INBOUND, INGEST_SECONDS
from inbox.batcher import Batcher
from inbox.channels import ChannelRow
from inbox.eventlog import EventRecord
from inbox.group_commit import Committed, Work, commit_batch
from inbox.ingest import IngestResult, apply_work, ingest_result, ingest_work
from schema.events import NormalizedEvent, ParsedPayload, ParseError

log = logging.getLogger(__name__)

_BATCHER = "group_commit"
# Shutdown: how long queued writes may still take to commit.
STOP_TIMEOUT = 10.0

GroupCommitter = Batcher[Work, Committed[Any]]


def install(ctx: AppContext) -> None:
    """One batcher per process; started lazily by its first write, stopped after the workers."""

    async def run(works: Sequence[Work]) -> list[Committed[Any] | BaseException]:
        return await _commit_and_publish(ctx, works)

    batcher: GroupCommitter = Batcher(run, max_batch=ctx.settings.gateway_commit_batch, name="group-commit")
    ctx.extras[_BATCHER] = batcher

    async def stop(ctx: AppContext) -> None:
        await batcher.close(STOP_TIMEOUT)

    ctx.extras.setdefault("stoppers", []).append(stop)


async def _commit_and_publish(ctx: AppContext, works: Sequence[Work]) -> list[Committed[Any] | BaseException]:
    outcomes = await commit_batch(ctx.pool, works)
    COMMIT_BATCH_SIZE.observe(len(works))
    # One publish for the whole batch, in seq order per account (the order appended).
    await publish(ctx, [r for o in outcomes if isinstance(o, Committed) for r in o.records])
    return outcomes


async def _commit(ctx: AppContext, work: Work) -> Committed[Any]:
    batcher = cast("GroupCommitter | None", ctx.extras.get(_BATCHER))
    if batcher is None:  # a context without the app's lifespan (workers under test)
        (outcome,) = await _commit_and_publish(ctx, [work])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
    return await batcher.submit(work)


async def ingest(
    ctx: AppContext,
    *,
    channel: ChannelRow,
    payload: str,
    dedup_key: str | None,
    parsed: ParsedPayload | ParseError,
) -> IngestResult:
    """Store and apply one provider request; returns once it is committed and its events published."""
    started = time.perf_counter()
    committed = await _commit(ctx, ingest_work(channel=channel, payload=payload, dedup_key=dedup_key, parsed=parsed))
    result = ingest_result(committed)
    INGEST_SECONDS.labels(channel.type).observe(time.perf_counter() - started)
    INBOUND.labels(channel.type, "duplicate" if result.duplicate else str(result.status)).inc()
    return result


async def apply_and_publish(
    ctx: AppContext, *, channel: ChannelRow, events: Sequence[NormalizedEvent]
) -> list[EventRecord]:
    committed = await _commit(ctx, apply_work(channel=channel, events=events))
    return committed.records


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
