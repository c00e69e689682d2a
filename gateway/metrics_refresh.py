"""Gauges computed when /metrics is scraped: event lag, WS queues, outbound queue age,
channel connections, DB pool, broker.

Read at scrape time rather than kept up to date on every event: the values are
cheap to compute for one scrape and cost the hot paths nothing. The SQL ones
run under a short deadline; when the database is away they are skipped
(``igw_metrics_db_up`` 0, lag and queue age NaN) and the scrape still answers.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import asyncpg
from prometheus_client import Gauge

from gateway.api.channels import connection_status
from gateway.context import AppContext
from gateway.http import DB_ERRORS
from gateway.ws_hub import WsHub
from schema.enums import ChannelType

log = logging.getLogger(__name__)

# Well under a scraper's usual 10 s timeout.
DB_TIMEOUT = 2.0
_SKIP_ON: tuple[type[BaseException], ...] = (TimeoutError, *DB_ERRORS)

WS_EVENT_LAG = Gauge(
    "igw_ws_event_lag",
    "Events committed but not yet delivered to this node's sockets: max over accounts with sockets here "
    "of accounts.last_seq minus the newest seq handed to them.",
)
WS_QUEUE_DEPTH_MAX = Gauge("igw_ws_queue_depth_max", "Frames queued for the most backed-up socket on this node.")
WS_QUEUE_DEPTH_TOTAL = Gauge("igw_ws_queue_depth_total", "Frames queued for all sockets on this node.")
OUTBOUND_QUEUE_AGE = Gauge(
    "igw_outbound_queue_age_seconds",
    "Seconds since the oldest due, unsent outbound job was queued (0 when none is due).",
)
CHANNEL_CONNECTION = Gauge(
    "igw_channel_connection",
    "1 per channel with a long-running connection (AMI), labelled with the status its holder last recorded.",
    ["channel_id", "channel_type", "status"],
)
DB_POOL_SIZE = Gauge("igw_db_pool_size", "Connections open in this process's PostgreSQL pool.")
DB_POOL_IN_USE = Gauge("igw_db_pool_in_use", "Pool connections checked out right now.")
DB_POOL_MAX = Gauge("igw_db_pool_max", "Most connections the pool may open.")
DB_POOL_WAITING = Gauge("igw_db_pool_waiting", "Callers waiting for a pool connection right now.")


def pool_waiting(pool: asyncpg.Pool) -> int:
    """How many acquire() calls wait for a connection. asyncpg keeps its free holders in an
    asyncio queue and exposes no count of waiters; read the queue's, and report 0 if that changes."""
    getters = getattr(getattr(pool, "_queue", None), "_getters", None)
    return sum(1 for waiter in getters if not waiter.done()) if getters is not None else 0
BROKER_CONNECTED = Gauge("igw_broker_connected", "1 while the event broker (Redis) is healthy, else 0.")
METRICS_DB_UP = Gauge("igw_metrics_db_up", "1 when the last scrape could read the database, else 0.")


def queue_depths(hub: WsHub) -> tuple[int, int]:
    """(max, total) frames queued over this node's subscribers."""
    depths = [len(sub.queue) for stream in hub.streams.values() for sub in stream.subscribers]
    return max(depths, default=0), sum(depths)


def delivered_seqs(hub: WsHub) -> dict[int, int]:
    """Newest seq handed to each account that has sockets on this node."""
    return {
        account_id: stream.last_seq
        for account_id, stream in hub.streams.items()
        if stream.subscribers and stream.last_seq is not None
    }


def event_lag(committed: dict[int, int], delivered: dict[int, int]) -> int:
    return max((max(0, committed.get(a, seq) - seq) for a, seq in delivered.items()), default=0)


async def refresh(ctx: AppContext) -> None:
    """Set the scrape-time gauges from ``ctx``; never raises for a database outage."""
    pool = ctx.pool
    DB_POOL_SIZE.set(pool.get_size())
    DB_POOL_IN_USE.set(pool.get_size() - pool.get_idle_size())
    DB_POOL_MAX.set(pool.get_max_size())
    DB_POOL_WAITING.set(pool_waiting(pool))
    healthy = getattr(ctx.broker, "healthy", None)
    BROKER_CONNECTED.set(1 if healthy is None or healthy() else 0)

    hub: WsHub | None = ctx.extras.get("ws_hub")
    delivered: dict[int, int] = {}
    if hub is not None:
        deepest, total = queue_depths(hub)
        WS_QUEUE_DEPTH_MAX.set(deepest)
        WS_QUEUE_DEPTH_TOTAL.set(total)
        delivered = delivered_seqs(hub)

    try:
        async with asyncio.timeout(DB_TIMEOUT):
            committed, queue_age, channels = await _read_db(pool, list(delivered))
    except _SKIP_ON as exc:
        log.warning("metrics: database unavailable, skipping SQL gauges (%s)", type(exc).__name__)
        METRICS_DB_UP.set(0)
        WS_EVENT_LAG.set(math.nan)
        OUTBOUND_QUEUE_AGE.set(math.nan)
        return
    METRICS_DB_UP.set(1)
    WS_EVENT_LAG.set(event_lag(committed, delivered))
    OUTBOUND_QUEUE_AGE.set(queue_age)
    # Rebuilt whole: a deleted channel or a status it left must not linger as a series.
    CHANNEL_CONNECTION.clear()
    for row in channels:
        status = connection_status(ChannelType(row["type"]), row["state"], row["config"])
        if status is not None:
            CHANNEL_CONNECTION.labels(str(row["id"]), row["type"], status).set(1)


async def _read_db(pool: asyncpg.Pool, account_ids: list[int]) -> tuple[dict[int, int], float, list[Any]]:
    async with pool.acquire(timeout=DB_TIMEOUT) as conn:
        committed: dict[int, int] = {}
        if account_ids:
            rows = await conn.fetch("SELECT id, last_seq FROM accounts WHERE id = ANY($1::bigint[])", account_ids)
            committed = {r["id"]: r["last_seq"] for r in rows}
        queue_age = await conn.fetchval(
            """SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
               FROM outbound_jobs WHERE status = 'queued' AND next_attempt_at <= now()"""
        )
        channels = await conn.fetch(
            """SELECT id, type, state, config FROM channels
               WHERE type IN ('asterisk', 'telegram') AND deleted_at IS NULL ORDER BY id"""
        )
    return committed, float(queue_age), list(channels)
