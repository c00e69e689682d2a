"""When the PBX last showed life on a channel (an AMI event or a Pong), for reconciliation after a gap.

Calls that ended while nobody listened are closed at this moment, not at the
reconnect (a gateway restart would otherwise lengthen each by the whole
outage). Kept in memory for reconnects within a process, and written to
``channel_heartbeats`` at most every ``every`` seconds (an event stream of
hundreds a second must not become as many UPDATEs) so the next process, or
another node taking the lease over, knows it too. Never fatal: a heartbeat
that cannot be written only makes the next reconciliation less precise.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from gateway.context import AppContext
from gateway.http import DB_ERRORS
from inbox.channels import ChannelRow
from inbox.heartbeats import last_seen, record_seen

log = logging.getLogger(__name__)

_WRITE_WITHIN = 2.0  # seconds; a heartbeat is not worth stalling the event stream for
_ERRORS: tuple[type[BaseException], ...] = (*DB_ERRORS, TimeoutError)


class LastSeen:
    def __init__(self, ctx: AppContext, channel: ChannelRow, every: float) -> None:
        self.ctx = ctx
        self.channel = channel
        self.every = every
        self.at: datetime | None = None  # the latest moment this process heard from the PBX
        self._written: datetime | None = None
        self._last_write = float("-inf")  # loop time

    def note(self, at: datetime) -> None:
        if self.at is None or at > self.at:
            self.at = at

    async def flush(self) -> None:
        """Write ``at`` if it moved and the last write is ``every`` seconds old."""
        loop_now = asyncio.get_running_loop().time()
        if self.at is None or self.at == self._written or loop_now - self._last_write < self.every:
            return
        self._last_write = loop_now
        at = self.at
        try:
            async with asyncio.timeout(_WRITE_WITHIN):
                await record_seen(self.ctx.pool, self.channel, at)
            self._written = at
        except _ERRORS as exc:
            log.warning("asterisk channel %s: heartbeat not written (%r)", self.channel.id, exc)

    async def before_this_session(self, fallback: datetime | None) -> datetime | None:
        """The bound for calls that ended while nobody listened: what this process heard last, else what the
        previous holder wrote, else ``fallback``."""
        if self.at is not None:
            return self.at
        try:
            async with asyncio.timeout(_WRITE_WITHIN):
                return await last_seen(self.ctx.pool, self.channel) or fallback
        except _ERRORS as exc:
            log.warning("asterisk channel %s: heartbeat not read (%r)", self.channel.id, exc)
            return fallback
