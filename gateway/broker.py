"""Event fan-out after commit. In-process by default; Redis when REDIS_URL is set.

Writers commit events through ``inbox.eventlog.append`` and then call
``await ctx.broker.publish(records)``. A broker is a hint, never the record:
the ``events`` table is. Publishing never raises for a broker outage (the
events are committed already) and listeners must tolerate gaps, duplicates and
reordering; ``gateway.ws_hub`` fills gaps from the log.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from inbox.eventlog import EventRecord

log = logging.getLogger(__name__)

Listener = Callable[[EventRecord], Awaitable[None] | None]
# Called when a broker (re)connects: whatever was published meanwhile is lost,
# listeners catch up from the log.
ReconnectListener = Callable[[], None]
# Called with the ids of API keys revoked anywhere (gateway.key_revocation closes their sockets).
RevocationListener = Callable[[Sequence[int]], None]


def deliver_revocation(listeners: Sequence[RevocationListener], key_ids: Sequence[int]) -> None:
    for listener in listeners:
        try:
            listener(key_ids)
        except Exception:
            log.exception("revocation listener %r failed", listener)


@runtime_checkable
class Broker(Protocol):
    async def publish(self, events: Sequence[EventRecord]) -> None: ...

    def add_listener(self, listener: Listener) -> None: ...

    def healthy(self) -> bool: ...


async def deliver(listeners: Sequence[Listener], events: Sequence[EventRecord]) -> None:
    """Hand events to listeners; a failing listener is logged, never raised to the writer."""
    for event in events:
        for listener in listeners:
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("event listener %r failed on %s seq %s", listener, event.account_id, event.seq)


class InProcessBroker:
    """One process: listeners are called directly, in publish order."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._revocation_listeners: list[RevocationListener] = []

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def add_reconnect_listener(self, callback: ReconnectListener) -> None:
        """Nothing to reconnect in one process."""

    def healthy(self) -> bool:
        return True

    async def publish(self, events: Sequence[EventRecord]) -> None:
        await deliver(self._listeners, events)

    def add_revocation_listener(self, listener: RevocationListener) -> None:
        self._revocation_listeners.append(listener)

    async def publish_revocation(self, key_ids: Sequence[int]) -> None:
        deliver_revocation(self._revocation_listeners, key_ids)
