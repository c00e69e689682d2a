"""Fan-out through Redis pub/sub so any number of gateway processes serve the same accounts.

One global channel, ``{GATEWAY_REDIS_PREFIX}:events``, carries every account's
events; each message is one ``publish`` call: ``{"node": <sender>, "events":
[<event frame>, ...]}``. Why one channel rather than one per account:

- a node subscribes once at connect and once per reconnect; there is no
  per-account SUBSCRIBE/UNSUBSCRIBE churn to keep consistent with the sockets
  that come and go, and no window where a new socket's account is not yet
  subscribed on the Redis side;
- a node drops events of accounts it has no socket for with one dict lookup,
  which costs far less than the socket writes of the events it does deliver at
  inbox event rates (hundreds per second, not millions);
- should that stop being true, per-account (or sharded) channels are a change
  to this module alone: the hub already knows its active accounts.

Redis is a hint, the event log is the record. The publisher delivers to its
own process's listeners directly (not through Redis) and skips its own
messages when they come back. When Redis is unreachable ``publish`` still
returns normally, ``healthy()`` turns false (``/readyz`` answers 503) and the
subscriber reconnects with backoff (1 s → 60 s, jitter, at most 6 attempts in
any 30 s); on every (re)connect, reconnect listeners run so the hub catches up
from the log: nothing published meanwhile is lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.backoff import ReconnectBackoff
from gateway.broker import Listener, ReconnectListener, RevocationListener, deliver, deliver_revocation
from gateway.metrics import REDIS_PUBLISH_FAILURES
from gateway.supervise import TaskGroup
from inbox.eventlog import EventRecord

log = logging.getLogger(__name__)

# A connection that stayed up this long resets the backoff to its first step.
STABLE_AFTER = 30.0
# An idle subscription is probed with PING after this long, and given up
# (reconnect, catch up) when nothing at all was heard for SILENCE_LIMIT.
PING_AFTER = 5.0
SILENCE_LIMIT = 15.0
# After a failed publish, publishing is skipped this long: a Redis that hangs
# costs writers at most one timeout per pause.
PUBLISH_PAUSE = 1.0


def record_from_json(item: dict[str, Any]) -> EventRecord:
    """Inverse of ``EventRecord.to_json``."""
    conversation_id = item.get("conversation_id")
    return EventRecord(
        account_id=int(item["account_id"]),
        seq=int(item["seq"]),
        event=str(item["event"]),
        conversation_id=None if conversation_id is None else int(conversation_id),
        data=dict(item["data"]),
        ts=datetime.fromisoformat(item["ts"]),
    )


def _client(url: str, **kwargs: Any) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_keepalive=True, **kwargs)


class RedisBroker:
    def __init__(self, url: str, *, prefix: str, node_id: str | None = None) -> None:
        self.url = url
        self.channel = f"{prefix}:events"
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self._listeners: list[Listener] = []
        self._reconnect_listeners: list[ReconnectListener] = []
        self._revocation_listeners: list[RevocationListener] = []
        # One retry covers a pooled connection left stale by a Redis restart.
        self._publisher = _client(url, socket_timeout=2, retry=Retry(NoBackoff(), 1))
        self._started = False
        self._subscribed = False
        self._publish_failed = False
        self._publish_paused_until = 0.0
        self.backoff = ReconnectBackoff()

    # -- the Broker protocol -------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def add_reconnect_listener(self, callback: ReconnectListener) -> None:
        self._reconnect_listeners.append(callback)

    def healthy(self) -> bool:
        if not self._started:
            return not self._publish_failed
        return self._subscribed and not self._publish_failed

    async def publish(self, events: Sequence[EventRecord]) -> None:
        if not events:
            return
        # This process's sockets need no round trip through Redis.
        await deliver(self._listeners, events)
        if (self._started and not self._subscribed) or time.monotonic() < self._publish_paused_until:
            # Redis is away: don't make every writer wait for a timeout; the
            # other nodes' periodic check reads these events from the log.
            return
        payload = json.dumps({"node": self.node_id, "events": [e.to_json() for e in events]})
        try:
            await self._publisher.publish(self.channel, payload)
        except (RedisError, OSError) as exc:
            REDIS_PUBLISH_FAILURES.labels("events").inc()
            if not self._publish_failed:
                log.warning("redis broker: publish failed (%s); subscribers will catch up from the log", exc)
            self._publish_failed = True
            self._publish_paused_until = time.monotonic() + PUBLISH_PAUSE
        else:
            self._publish_failed = False

    # -- key revocations (same channel: ordered with the events published after them) --

    def add_revocation_listener(self, listener: RevocationListener) -> None:
        self._revocation_listeners.append(listener)

    async def publish_revocation(self, key_ids: Sequence[int]) -> None:
        """Tell every node; a lost message is caught by the nodes' periodic check of revoked keys."""
        deliver_revocation(self._revocation_listeners, key_ids)
        payload = json.dumps({"node": self.node_id, "revoked_keys": [int(k) for k in key_ids]})
        try:
            await self._publisher.publish(self.channel, payload)
        except (RedisError, OSError) as exc:
            REDIS_PUBLISH_FAILURES.labels("revocation").inc()
            log.warning("redis broker: publishing a key revocation failed (%s); nodes find it in the database", exc)

    # -- lifecycle ---------------------------------------------------------------

    def start(self, tasks: TaskGroup) -> None:
        self._started = True
        tasks.spawn(self.run(), name="redis-broker-subscriber")

    async def close(self) -> None:
        await self._publisher.aclose()

    async def run(self) -> None:
        """Subscribe, deliver, and reconnect forever (until cancelled)."""
        while True:
            delay = self.backoff.next_delay()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                log.warning("redis broker: %s (%s); reconnecting", type(exc).__name__, exc)
            finally:
                self._subscribed = False

    async def _listen(self) -> None:
        # No silent retry: a reconnect must be seen here, because what was
        # published while it lasted has to be caught up from the log.
        client = _client(self.url, socket_timeout=10, retry=Retry(NoBackoff(), 0))
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            deadline = time.monotonic() + SILENCE_LIMIT
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message["type"] == "subscribe":
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("no subscribe confirmation from Redis")
            connected_at = last_heard = time.monotonic()
            self._subscribed = True
            self._publish_failed = False
            log.info("redis broker: subscribed to %s", self.channel)
            for callback in self._reconnect_listeners:
                callback()
            pinged = False
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                now = time.monotonic()
                if now - connected_at > STABLE_AFTER:
                    self.backoff.reset()
                if message is None:
                    # A Redis behind a dead network sends no FIN: probe it.
                    if now - last_heard > SILENCE_LIMIT:
                        raise TimeoutError(f"Redis silent for {SILENCE_LIMIT:.0f} s")
                    if now - last_heard > PING_AFTER and not pinged:
                        await pubsub.ping()
                        pinged = True
                    continue
                last_heard, pinged = now, False
                if message["type"] == "message":
                    await self._on_message(message["data"])
        finally:
            await pubsub.aclose()
            await client.aclose()

    async def _on_message(self, data: bytes) -> None:
        try:
            body = json.loads(data)
            if body.get("node") == self.node_id:
                return
            if "revoked_keys" in body:
                deliver_revocation(self._revocation_listeners, [int(k) for k in body["revoked_keys"]])
                return
            events = [record_from_json(item) for item in body["events"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("redis broker: dropped a malformed message on %s: %s", self.channel, exc)
            return
        await deliver(self._listeners, events)
