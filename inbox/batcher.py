"""Group commit, the pure part: gather concurrent requests into batches.

A ``Batcher`` owns one task that runs one batch at a time. Requests that
arrive while a batch is running wait in a queue and all go into the next one
(up to ``max_batch``), so there is no timer and no window: under no load a
request runs alone at once, under load the batch grows to whatever is waiting.

The batch's work belongs to the batcher task, not to the requests: a request
whose caller is cancelled (a client that went away) stops waiting, but the
item it handed in is still run with its batch-mates and nothing else is
disturbed. ``run`` answers each item with a value or an exception of its own;
an exception raised by ``run`` itself fails every item of that batch.

Nothing here knows about databases; ``inbox.group_commit`` supplies ``run``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Batcher", "BatcherClosed"]

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741 - an item
R = TypeVar("R")

# Answers each item, in order, with its result or the exception it alone failed with.
RunBatch = Callable[[Sequence[I]], Awaitable[Sequence[R | BaseException]]]


class BatcherClosed(ConnectionError):
    """The batcher was shut down before the item's batch committed.

    A ConnectionError because to its caller it is one: the outcome is that of
    a lost database connection (retry later; a redelivery is a no-op if it
    did commit), and it is answered and retried like one."""


class Batcher(Generic[I, R]):
    def __init__(self, run: RunBatch[I, R], *, max_batch: int = 64, name: str = "batcher") -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run = run
        self._max = max_batch
        self._name = name
        self._queue: collections.deque[tuple[I, asyncio.Future[R]]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._in_flight: list[asyncio.Future[R]] = []
        # Sizes of the batches run so far (for tests and the benchmark, not for control).
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self._name)

    async def submit(self, item: I) -> R:
        """Run ``item`` in the next batch and return its own result (or raise its own error)."""
        if self._closing:
            raise BatcherClosed(f"{self._name} is shut down")
        self.start()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._wakeup.set()
        # Cancelling the caller cancels only this future; the loop skips answering it.
        return await future

    async def _loop(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(self._max, len(self._queue)))]
            # Kept until answered: if this task is cancelled mid-batch, close() fails them.
            self._in_flight = [future for _, future in batch]
            outcomes: Sequence[R | BaseException] | BaseException
            try:
                outcomes = await self._run([item for item, _ in batch])
                if len(outcomes) != len(batch):
                    outcomes = RuntimeError(f"{self._name}: {len(outcomes)} answers for {len(batch)} items")
            except Exception as exc:  # the batch as a whole failed (e.g. the database is down)
                outcomes = exc
            self.batches += 1
            self.items += len(batch)
            for index, (_, future) in enumerate(batch):
                _settle(future, outcomes if isinstance(outcomes, BaseException) else outcomes[index])
            self._in_flight = []

    async def close(self, deadline: float = 10.0) -> None:
        """Refuse new items, run what is queued within ``deadline`` seconds, then fail the rest."""
        self._closing = True
        self._wakeup.set()
        task = self._task
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=deadline)
        if not done:
            log.warning("%s: still busy after %.1fs at shutdown; failing %d queued item(s)", self._name, deadline,
                        len(self._queue) + len(self._in_flight))
            task.cancel()
            # wait() does not raise the task's CancelledError, and ours still propagates.
            await asyncio.wait({task})
        elif not task.cancelled() and task.exception() is not None:
            log.error("%s stopped with an error", self._name, exc_info=task.exception())
        closed = BatcherClosed(f"{self._name} shut down before this item ran")
        for future in self._in_flight:
            _settle(future, closed)
        while self._queue:
            _settle(self._queue.popleft()[1], closed)


def _settle(future: asyncio.Future[R], outcome: R | BaseException) -> None:
    if future.done():  # its caller stopped waiting
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
