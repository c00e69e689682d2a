"""Runs each channel's long-lived connection (AMI, Telegram polling) on exactly one node.

Every node looks at the live channels every ``interval`` seconds (or at once
when woken after an API change). For each channel whose type has a runner it
tries a session-level ``pg_try_advisory_lock`` on a dedicated connection: the
node that gets it runs the channel; the others skip it. The lock lives as long
as that connection, so when a node dies PostgreSQL drops it and another node
takes the channel over on its next pass. A holder that can no longer reach
PostgreSQL stops its runner at once, since it can no longer prove it holds
the lease.
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
from inbox.channels import ChannelRow, list_active_channels

log = logging.getLogger(__name__)

# First key of the two-int advisory lock: "channel connection leases".
LEASE_NAMESPACE = 0x1B0C


@dataclass
class _Held:
    task: asyncio.Task[None]
    updated_at: datetime


class ChannelSupervisor:
    def __init__(self, ctx: AppContext, *, interval: float = 2.0) -> None:
        self.ctx = ctx
        self.interval = interval
        self._held: dict[int, _Held] = {}
        self._retry_at: dict[int, float] = {}
        self._failures: dict[int, int] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    @property
    def running(self) -> set[int]:
        """Channels whose runner this node is running now."""
        return {cid for cid, held in self._held.items() if not held.task.done()}

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.reconcile()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("channel supervisor cannot list channels: %r", exc)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
        finally:
            await self.stop_all()

    async def reconcile(self) -> None:
        types = list(self.ctx.runners)
        wanted = {c.id: c for c in await list_active_channels(self.ctx.pool, types)} if types else {}
        for channel_id, held in list(self._held.items()):
            channel = wanted.get(channel_id)
            if held.task.done() or channel is None or channel.updated_at != held.updated_at:
                await self._stop(channel_id)
        now = time.monotonic()
        for channel_id, channel in wanted.items():
            if channel_id in self._held or self._retry_at.get(channel_id, 0) > now:
                continue
            task = asyncio.create_task(self._hold(channel), name=f"channel-{channel_id}")
            self._held[channel_id] = _Held(task, channel.updated_at)

    async def _stop(self, channel_id: int) -> None:
        held = self._held.pop(channel_id, None)
        if held is None:
            return
        held.task.cancel()
        # asyncio.wait, not ``await task`` under suppress(CancelledError): that
        # would also swallow a cancellation of the supervisor itself.
        await asyncio.wait({held.task})

    async def stop_all(self) -> None:
        for channel_id in list(self._held):
            await self._stop(channel_id)

    def _backoff(self, channel_id: int) -> None:
        failures = self._failures.get(channel_id, 0) + 1
        self._failures[channel_id] = failures
        delay = min(60.0, 2.0 ** (failures - 1)) * random.uniform(0.8, 1.2)
        self._retry_at[channel_id] = time.monotonic() + delay

    async def _hold(self, channel: ChannelRow) -> None:
        assert self.ctx.settings.database_url
        try:
            conn = await asyncpg.connect(self.ctx.settings.database_url)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("cannot open a lease connection for channel %s: %r", channel.id, exc)
            self._backoff(channel.id)
            return
        runner: asyncio.Task[None] | None = None
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", LEASE_NAMESPACE, channel.id):
                return  # another node runs it
            log.info("node %s runs channel %s (%s)", self.ctx.node_id, channel.id, channel.type)
            runner = asyncio.ensure_future(self.ctx.runners[channel.type](self.ctx, channel))
            while True:
                done, _ = await asyncio.wait({runner}, timeout=self.interval)
                if done:
                    log.error("runner of channel %s stopped", channel.id, exc_info=runner.exception())
                    self._backoff(channel.id)
                    return
                # Proves the lease is still ours; raises when the connection is gone.
                await conn.fetchval("SELECT 1", timeout=max(1.0, self.interval))
                self._failures.pop(channel.id, None)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("lost the lease of channel %s: %r", channel.id, exc)
            self._backoff(channel.id)
        finally:
            if runner is not None and not runner.done():
                runner.cancel()
                await asyncio.wait({runner})
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)


async def start_supervisor(ctx: AppContext) -> None:
    if not ctx.runners or not ctx.settings.gateway_workers:
        return
    supervisor = ChannelSupervisor(ctx, interval=ctx.settings.gateway_lease_interval)
    ctx.extras["channel_supervisor"] = supervisor
    ctx.extras["wake_supervisor"] = supervisor.wake
    ctx.tasks.spawn(supervisor.run(), name="channel-supervisor")
