"""Supervised background tasks: every task is referenced and its failure logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskGroup:
    """Keeps references to background tasks; logs any that die with an error."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("background task %s failed", task.get_name(), exc_info=exc)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()


async def poll_loop(
    name: str,
    step: Callable[[], Awaitable[bool]],
    wakeup: asyncio.Event,
    poll_interval: float,
    *,
    retry_on: tuple[type[BaseException], ...],
    stopping: Callable[[], bool] = lambda: False,
) -> None:
    """Run ``step`` until cancelled or ``stopping()`` (checked between steps; set
    ``wakeup`` with it): again at once while it finds work, else at the next
    poll or wake-up. Errors in ``retry_on`` (a database outage) are waited out
    with exponential backoff instead of killing the worker."""
    failures = 0
    while not stopping():
        try:
            worked = await step()
            failures = 0
        except retry_on as exc:
            failures += 1
            delay = min(30.0, poll_interval * 2 ** min(failures, 6))
            log.warning("%s: database error (%s); retrying in %.1fs", name, exc, delay)
            await asyncio.sleep(delay)
            continue
        if not worked and not stopping():
            wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), poll_interval)
