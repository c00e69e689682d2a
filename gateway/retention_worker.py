"""Runs the retention policies (inbox.retention) periodically inside ``serve``.

Only one process of a deployment works at a time (a try-lock: the others skip
that round). The first round waits a while after start so a freshly started
service — or a test server — is not busy deleting at once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from gateway.context import AppContext
from gateway.http import DB_ERRORS
from inbox.retention import run_retention

log = logging.getLogger(__name__)

# Arbitrary constant: "inbox-gateway retention".
RETENTION_LOCK_ID = 0x1B0C_6A7E_0007


@dataclass(frozen=True)
class RetentionSchedule:
    first_delay: float = 300.0
    interval: float = 6 * 3600.0


async def run_once(ctx: AppContext) -> bool:
    """One round if no other process is running one; True when this process ran it."""
    async with ctx.pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK_ID):
            return False
        try:
            report = await run_retention(ctx.pool, media_root=ctx.settings.media_dir)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK_ID)
    for line in report.lines():
        log.info("retention: %s", line)
    return True


async def _loop(ctx: AppContext, schedule: RetentionSchedule) -> None:
    await asyncio.sleep(schedule.first_delay)
    while True:
        try:
            await run_once(ctx)
        except DB_ERRORS as exc:
            log.warning("retention: round failed (%s); next round in %.0fs", exc, schedule.interval)
        await asyncio.sleep(schedule.interval)


def install(ctx: AppContext) -> None:
    if not ctx.settings.gateway_workers:
        return
    schedule = ctx.extras.get("retention_schedule")
    if not isinstance(schedule, RetentionSchedule):
        schedule = RetentionSchedule()

    async def start(ctx: AppContext) -> None:
        ctx.tasks.spawn(_loop(ctx, schedule), name="retention")

    ctx.extras.setdefault("starters", []).append(start)
