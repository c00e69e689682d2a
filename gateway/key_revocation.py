"""Sockets of a revoked API key are closed (4401) on every gateway process.

``DELETE /api/v1/keys/{id}`` commits the revocation, then publishes it through
the broker before answering: in one process the key's sockets are dropped
before the 204 leaves; over Redis the revocation travels on the same channel
as events, so every node drops them before it delivers any event published
after the 204. A revocation message lost to a Redis outage (or a key revoked
straight in the database) is found by a periodic check: one query for the
keys of this node's open sockets every ``GATEWAY_WS_CHECK_INTERVAL`` seconds.

Dropping a socket detaches it from the hub and empties its queue at once, so
nothing queued for it is sent after the revocation arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence

from gateway.context import AppContext
from gateway.ws_hub import DB_ERRORS, Subscriber, WsHub

log = logging.getLogger(__name__)

CLOSE_REVOKED = 4401


class KeySockets:
    """The open sockets of this process by API key id."""

    def __init__(self, hub: WsHub) -> None:
        self.hub = hub
        self._by_key: dict[int, set[Subscriber]] = {}

    @contextlib.contextmanager
    def tracking(self, key_id: int, sub: Subscriber) -> Iterator[None]:
        self._by_key.setdefault(key_id, set()).add(sub)
        try:
            yield
        finally:
            subs = self._by_key.get(key_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_key[key_id]

    def revoke(self, key_ids: Sequence[int]) -> None:
        """Broker listener: drop every socket of these keys now."""
        for key_id in key_ids:
            for sub in self._by_key.pop(key_id, set()):
                self.hub.drop(sub, CLOSE_REVOKED)

    async def check_now(self) -> None:
        if not self._by_key:
            return
        try:
            rows = await self.hub.pool.fetch(
                "SELECT id FROM api_keys WHERE id = ANY($1::bigint[]) AND revoked_at IS NOT NULL", list(self._by_key)
            )
        except DB_ERRORS as exc:
            log.warning("key revocation check: database unavailable (%s)", type(exc).__name__)
            return
        self.revoke([r["id"] for r in rows])

    async def watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.check_now()


def key_sockets(ctx: AppContext) -> KeySockets:
    sockets: KeySockets = ctx.extras["key_sockets"]
    return sockets


async def publish_revocation(ctx: AppContext, key_ids: Sequence[int]) -> None:
    """After the revocation committed. Brokers without revocation support (test doubles) leave it to the check."""
    publish = getattr(ctx.broker, "publish_revocation", None)
    if publish is not None:
        await publish(key_ids)
    else:
        key_sockets(ctx).revoke(key_ids)


def install(ctx: AppContext) -> None:
    """After ``gateway.ws_hub.install`` (wired in ``gateway.app``)."""
    sockets = KeySockets(ctx.extras["ws_hub"])
    ctx.extras["key_sockets"] = sockets
    add_listener = getattr(ctx.broker, "add_revocation_listener", None)
    if add_listener is not None:
        add_listener(sockets.revoke)

    async def start(ctx: AppContext) -> None:
        ctx.tasks.spawn(sockets.watch(ctx.settings.gateway_ws_check_interval), name="ws-key-revocation-check")

    ctx.extras.setdefault("starters", []).append(start)
