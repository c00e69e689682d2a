"""Supervised background tasks: every task is referenced, its failure logged, and its stop bounded.

Stopping a task is always ``cancel`` then ``asyncio.wait`` with a deadline
(``stop_tasks``), never ``await task`` under ``suppress(CancelledError)``: when
the stopping task is itself cancelled while it waits, that form swallows its
own cancellation (the child's ``CancelledError`` and ours look alike), and the
stopper carries on as if nothing had asked it to stop. ``asyncio.wait`` never
raises for how the child ended, so our own cancellation is the only
``CancelledError`` that can come out of it. Waiting on an event with a timeout
uses ``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11 ``wait_for``
drops a cancellation that arrives as the awaited event fires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

log = logging.getLogger(__name__)

# How long a background task may take to wind down at shutdown before it is abandoned (and logged);
# longer than the channel supervisor's own deadline for its runners, so it gets to stop them first.
STOP_TIMEOUT = 15.0


def _late_end(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        log.warning("abandoned task %s stopped at last (cancelled)", task.get_name())
        return
    log.warning("abandoned task %s stopped at last", task.get_name(), exc_info=task.exception())


async def stop_tasks(tasks: Iterable[asyncio.Task[Any] | None], *, within: float,
                     what: str = "") -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait at most ``within`` seconds for them to end.

    Returns the tasks still running at the deadline: they are abandoned, which
    is logged now and again when they end. How a task ended is not raised here
    (its owner reads it); a cancellation of the caller always propagates.
    """
    stopping = [t for t in tasks if t is not None]
    for task in stopping:
        task.cancel()
    pending = {t for t in stopping if not t.done()}
    if pending:
        _, pending = await asyncio.wait(pending, timeout=within)
    for task in stopping:
        if task in pending:
            log.error("%s%s did not stop within %gs of being cancelled; abandoned",
                      f"{what}: " if what else "", task.get_name(), within)
            task.add_done_callback(_late_end)
        elif not task.cancelled():
            task.exception()  # read here: "exception never retrieved" is the owner's business, not the loop's
    return pending


async def wait_event(event: asyncio.Event, within: float) -> bool:
    """Wait until ``event`` is set or ``within`` seconds pass; True if it was set. Cancellation propagates."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            await event.wait()
    return event.is_set()


class TaskGroup:
    """Keeps references to background tasks; logs any that die with an error; stops them within a deadline."""

    def __init__(self, *, stop_timeout: float = STOP_TIMEOUT) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stop_timeout = stop_timeout

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
        """Cancel every task; one that has not ended ``stop_timeout`` seconds later is abandoned and logged."""
        tasks = list(self._tasks)
        self._tasks.clear()
        await stop_tasks(tasks, within=self.stop_timeout, what="shutdown")


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
            await wait_event(wakeup, poll_interval)
