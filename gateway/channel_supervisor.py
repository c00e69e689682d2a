"""Runs each channel's long-lived connection (AMI, Telegram polling) on exactly one node.

Every node looks at the live channels every ``interval`` seconds (or at once
when woken after an API change). It holds one dedicated PostgreSQL connection
for leases and, for each channel whose type has a runner, tries a
session-level ``pg_try_advisory_lock`` on it: the node that gets the lock runs
the channel; the others skip it. The locks live as long as that connection,
so when a node dies PostgreSQL drops them and another node takes its channels
over on its next pass. Each pass first proves the connection is alive; a node
that can no longer reach PostgreSQL stops all its runners at once, since it
can no longer prove it holds their leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from gateway.context import AppContext
from gateway.log_redaction import remember_secrets
from inbox.channels import ChannelRow, list_active_channels

log = logging.getLogger(__name__)

# First key of the two-int advisory lock: "channel connection leases".
LEASE_NAMESPACE = 0x1B0C
_LEASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass
class _Held:
    task: asyncio.Task[None]
    updated_at: datetime


class ChannelSupervisor:
    def __init__(self, ctx: AppContext, *, interval: float = 2.0) -> None:
        self.ctx = ctx
        self.interval = interval
        self._conn: asyncpg.Connection | None = None
        self._held: dict[int, _Held] = {}
        self._retry_at: dict[int, float] = {}
        self._failures: dict[int, int] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    @property
    def running(self) -> set[int]:
        """Channels whose lease this node holds and whose runner is running."""
        return {cid for cid, held in self._held.items() if not held.task.done()}

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.reconcile()
                except _LEASE_ERRORS as exc:
                    log.warning("channel supervisor lost its database connection: %r", exc)
                    # Back off from the channels we ran, so a node that can still
                    # reach the database takes them over first.
                    for channel_id in list(self._held):
                        self._backoff(channel_id)
                    await self._drop_leases()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
        finally:
            await self._drop_leases()

    async def _lease_conn(self) -> asyncpg.Connection:
        if self._conn is not None and self._conn.is_closed():
            # The session and every lock on it are gone: what we run is no longer ours.
            raise asyncpg.InterfaceError("the lease connection was closed")
        if self._conn is None:
            assert self.ctx.settings.database_url
            self._conn = await asyncpg.connect(self.ctx.settings.database_url, timeout=max(2.0, self.interval))
        # Proves the leases are still ours; raises when the session is gone.
        await self._conn.fetchval("SELECT 1", timeout=max(1.0, self.interval))
        return self._conn

    async def reconcile(self) -> None:
        conn = await self._lease_conn()
        types = list(self.ctx.runners)
        wanted = {c.id: c for c in await list_active_channels(self.ctx.pool, types)} if types else {}
        for channel_id, held in list(self._held.items()):
            channel = wanted.get(channel_id)
            if held.task.done():
                log.error("runner of channel %s stopped", channel_id, exc_info=held.task.exception())
                self._backoff(channel_id)
            if held.task.done() or channel is None or channel.updated_at != held.updated_at:
                await self._release(conn, channel_id)
        now = time.monotonic()
        for channel_id, channel in wanted.items():
            if channel_id in self._held or self._retry_at.get(channel_id, 0) > now:
                continue
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", LEASE_NAMESPACE, channel_id):
                continue  # another node runs it
            log.info("node %s runs channel %s (%s)", self.ctx.node_id, channel_id, channel.type)
            task = asyncio.ensure_future(self._run(channel))
            self._held[channel_id] = _Held(task, channel.updated_at)

    async def _run(self, channel: ChannelRow) -> None:
        remember_secrets(channel.secrets)  # runners' libraries log requests whole
        await self.ctx.runners[channel.type](self.ctx, channel)
        self._failures.pop(channel.id, None)

    async def _stop_runner(self, channel_id: int) -> None:
        held = self._held.pop(channel_id, None)
        if held is not None and not held.task.done():
            held.task.cancel()
            # asyncio.wait, not ``await task`` under suppress(CancelledError): that
            # would also swallow a cancellation of the supervisor itself.
            await asyncio.wait({held.task})

    async def _release(self, conn: asyncpg.Connection, channel_id: int) -> None:
        await self._stop_runner(channel_id)
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", LEASE_NAMESPACE, channel_id)

    async def _drop_leases(self) -> None:
        """Stop every runner, then close the lease connection (PostgreSQL frees the locks)."""
        for channel_id in list(self._held):
            await self._stop_runner(channel_id)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), 2)
            self._conn = None

    async def stop_all(self) -> None:
        await self._drop_leases()

    def _backoff(self, channel_id: int) -> None:
        failures = self._failures.get(channel_id, 0) + 1
        self._failures[channel_id] = failures
        delay = min(60.0, 2.0 ** (failures - 1)) * random.uniform(0.8, 1.2)
        self._retry_at[channel_id] = time.monotonic() + delay


async def start_supervisor(ctx: AppContext) -> None:
    if not ctx.runners or not ctx.settings.gateway_workers:
        return
    supervisor = ChannelSupervisor(ctx, interval=ctx.settings.gateway_lease_interval)
    ctx.extras["channel_supervisor"] = supervisor
    ctx.extras["wake_supervisor"] = supervisor.wake
    ctx.tasks.spawn(supervisor.run(), name="channel-supervisor")
