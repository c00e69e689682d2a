"""The outbound worker: hands queued replies to the channel's sender.

Each loop claims one due job at a time (``FOR UPDATE SKIP LOCKED``, so any
number of loops in any number of processes share the queue without sending a
job twice), commits its ``started`` attempt, calls
``ctx.senders[channel.type].send(...)`` and records the outcome. The delivery
guarantee is at most once; ``inbox.outbound`` explains why and how a worker
that died mid-send is recovered.

Timing comes from ``OutboundConfig`` (``ctx.extras["outbound_config"]``), so
tests can run with millisecond polls and backoffs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import cast

import asyncpg

from gateway.context import AppContext
from gateway.http import DB_ERRORS
from gateway.metrics import OUTBOUND_ATTEMPTS, code_label
from gateway.pipeline import publish
from gateway.supervise import poll_loop
from inbox import outbound
from inbox.eventlog import EventRecord
from inbox.outbound import ClaimedJob
from schema.outbound import OutboundRequest, PermanentSendError, TransientSendError

log = logging.getLogger(__name__)

# Waited out with backoff: an outage or a failed statement must not kill the loop.


@contextlib.asynccontextmanager
async def _connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    # A pool hands out proxies that behave as connections but are typed apart.
    async with pool.acquire() as conn:
        yield cast(asyncpg.Connection, conn)


@dataclass(frozen=True)
class OutboundConfig:
    concurrency: int = 4  # loops per process
    poll_interval: float = 1.0  # seconds between looks at an empty queue
    backoff_base: float = 2.0  # first transient retry after ~base seconds, then doubling
    backoff_cap: float = 600.0
    max_attempts: int = 8  # stored on each job when it is queued
    # Must exceed send_timeout: a job in flight longer than this is judged lost.
    lease_seconds: float = 300.0
    send_timeout: float = 60.0
    recover_interval: float = 15.0


def outbound_config(ctx: AppContext) -> OutboundConfig:
    config = ctx.extras.get("outbound_config")
    return config if isinstance(config, OutboundConfig) else OutboundConfig()


class OutboundWorker:
    def __init__(self, ctx: AppContext, config: OutboundConfig | None = None, *,
                 pool: asyncpg.Pool | None = None, node_id: str | None = None) -> None:
        self.ctx = ctx
        self.config = config or outbound_config(ctx)
        self.pool = pool or ctx.pool
        self.node_id = node_id or ctx.node_id
        self._wakeup = asyncio.Event()
        self._rng = random.Random()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False

    def wake(self) -> None:
        """A job was queued in this process: look now instead of at the next poll."""
        self._wakeup.set()

    def start(self) -> None:
        for n in range(self.config.concurrency):
            self._loops.append(self.ctx.tasks.spawn(self.run(recover=n == 0), name=f"outbound-worker-{n}"))

    async def drain(self, within: float) -> None:
        """Graceful stop: claim nothing more, let sends in flight finish and be recorded.

        A job is claimed and its attempt committed in one step, so nothing is
        claimed-but-unstarted to hand back. A send still running after
        ``within`` is cancelled: its attempt stays 'started' and lease recovery
        settles it (never sent twice).
        """
        self._stopping = True
        self._wakeup.set()
        loops = [t for t in self._loops if not t.done()]
        if not loops:
            return
        _, running = await asyncio.wait(loops, timeout=within)
        for task in running:
            log.warning("outbound worker: a send outlived the shutdown timeout; lease recovery will settle it")
            task.cancel()
        if running:
            await asyncio.wait(running)

    async def run(self, *, recover: bool = True) -> None:
        """Work until cancelled. Database outages are waited out, never fatal."""
        loop = asyncio.get_running_loop()
        next_recovery = loop.time()

        async def step() -> bool:
            nonlocal next_recovery
            if recover and loop.time() >= next_recovery:
                await self.recover()
                next_recovery = loop.time() + self.config.recover_interval
            return await self.run_once()

        await poll_loop("outbound worker", step, self._wakeup, self.config.poll_interval, retry_on=DB_ERRORS,
                        stopping=lambda: self._stopping)

    async def recover(self) -> int:
        async with _connection(self.pool) as conn:
            records = await outbound.recover_stale(conn, self.config.lease_seconds)
        if records:
            log.warning("outbound worker: %d message(s) failed as delivery_unknown after a lost worker",
                        len(records))
        await self._publish(records)
        return len(records)

    async def run_once(self) -> bool:
        """Claim and process one due job; False when none is due."""
        async with _connection(self.pool) as conn:
            job = await outbound.claim_next(conn, self.node_id)
        if job is None:
            return False
        records = await self._process(job)
        await self._publish(records)
        return True

    async def _process(self, job: ClaimedJob) -> list[EventRecord]:
        if job.channel is None:
            return await self._failed(job, "channel_deleted", "the channel was deleted before sending", False)
        sender = self.ctx.senders.get(job.channel.type)
        if sender is None:
            return await self._failed(job, "unsupported_channel", f"no sender for {job.channel.type} channels", False)
        if job.to is None:
            return await self._failed(job, "no_recipient", "the contact has no identity on this channel type", False)
        request = OutboundRequest(
            job_id=job.job_id,
            message_id=job.message_id,
            attempt=job.attempt,
            channel_id=job.channel.id,
            channel_type=job.channel.type,
            channel_config=job.channel.config,
            channel_secrets=self.ctx.channel_secrets(job.channel),
            to=job.to,
            text=job.text,
            reply_to_external_id=job.reply_to_external_id,
            identities=job.identities,
            thread_id=job.thread_id,
        )
        # Cancellation (shutdown, crash) propagates without recording anything:
        # the attempt stays 'started' and lease recovery settles it.
        try:
            async with asyncio.timeout(self.config.send_timeout):
                result = await sender.send(request)
        except TransientSendError as exc:
            delay = outbound.retry_delay(job.attempt, base=self.config.backoff_base, cap=self.config.backoff_cap,
                                         retry_after=exc.retry_after, rng=self._rng)
            return await self._failed(job, exc.code, exc.message, True, delay)
        except PermanentSendError as exc:
            return await self._failed(job, exc.code, exc.message, False)
        except TimeoutError:
            # The request may have reached the provider: same verdict as a lost worker.
            return await self._failed(
                job, outbound.DELIVERY_UNKNOWN,
                f"the provider did not answer within {self.config.send_timeout:g}s; it is unknown whether "
                "the message was delivered, so it is not sent again automatically", False,
            )
        except Exception as exc:
            # A sender bug (an untranslated exception). Not retried: it might have sent.
            log.exception("outbound sender for %s raised %s", job.channel.type, type(exc).__name__)
            return await self._failed(job, "sender_error", f"{type(exc).__name__}: {exc}", False)
        async with _connection(self.pool) as conn:
            records = await outbound.record_sent(conn, job, result.external_id, result.sent_at)
        OUTBOUND_ATTEMPTS.labels(job.channel.type, "sent", "").inc()
        return records

    async def _failed(self, job: ClaimedJob, code: str, message: str, transient: bool,
                      retry_in: float | None = None) -> list[EventRecord]:
        async with _connection(self.pool) as conn:
            records = await outbound.record_failure(conn, job, code=code, message=message, transient=transient,
                                                    retry_in=retry_in)
        channel_type = job.channel.type if job.channel is not None else "unknown"
        OUTBOUND_ATTEMPTS.labels(channel_type, "transient_error" if transient else "permanent_error",
                                 code_label(code)).inc()
        return records

    async def _publish(self, records: Sequence[EventRecord]) -> None:
        await publish(self.ctx, records)


def install(ctx: AppContext) -> None:
    worker = OutboundWorker(ctx)
    ctx.extras["outbound_worker"] = worker
    ctx.extras["wake_outbound"] = worker.wake
    if not ctx.settings.gateway_workers:
        return

    async def start(ctx: AppContext) -> None:
        worker.start()

    ctx.extras.setdefault("starters", []).append(start)
