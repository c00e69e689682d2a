"""Event fan-out after commit. In-process by default; Redis when REDIS_URL is set."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from inbox.eventlog import EventRecord

Listener = Callable[[EventRecord], Awaitable[None] | None]


class Broker(Protocol):
    async def publish(self, events: Sequence[EventRecord]) -> None: ...


class InProcessBroker:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def publish(self, events: Sequence[EventRecord]) -> None:
        for event in events:
            for listener in self._listeners:
                result = listener(event)
                if result is not None:
                    await result
