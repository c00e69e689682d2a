"""The pure batching logic of group commit: no database, a fake ``run`` that records its batches."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from inbox.batcher import Batcher, BatcherClosed


class Recorder:
    """A ``run`` that can be held open, so tests decide what is waiting when a batch starts."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()

    async def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        self.started.set()
        await self.gate.wait()
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]


async def _until(condition, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0)  # let the batcher and the submitters run


async def test_requests_arriving_during_a_batch_form_the_next_batch_and_each_gets_its_own_answer():
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run, max_batch=100)
    run.gate.clear()
    first = asyncio.create_task(batcher.submit(1))
    await run.started.wait()
    waiting = [asyncio.create_task(batcher.submit(i)) for i in range(2, 7)]
    await _until(lambda: len(batcher._queue) == 5)
    run.gate.set()
    assert await first == 10
    assert await asyncio.gather(*waiting) == [20, 30, 40, 50, 60]
    assert run.batches == [[1], [2, 3, 4, 5, 6]]
    await batcher.close(5)


async def test_a_failing_item_fails_alone():
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run)
    run.gate.clear()
    blocker = asyncio.create_task(batcher.submit(0))
    await run.started.wait()
    tasks = [asyncio.create_task(batcher.submit(i)) for i in (1, -2, 3)]
    await _until(lambda: len(batcher._queue) == 3)
    run.gate.set()
    results = await asyncio.gather(blocker, *tasks, return_exceptions=True)
    assert results[:2] == [0, 10] and results[3] == 30
    assert isinstance(results[2], ValueError) and str(results[2]) == "bad -2"
    assert run.batches == [[0], [1, -2, 3]]
    await batcher.close(5)


async def test_a_batch_that_fails_as_a_whole_fails_each_of_its_items_and_the_next_batch_runs():
    calls = 0

    async def run(items: Sequence[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionRefusedError("database down")
        return list(items)

    batcher: Batcher[int, int] = Batcher(run)
    with pytest.raises(ConnectionRefusedError):
        await batcher.submit(1)
    assert await batcher.submit(2) == 2
    await batcher.close(5)


async def test_batches_are_capped():
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run, max_batch=3)
    run.gate.clear()
    tasks = [asyncio.create_task(batcher.submit(i)) for i in range(8)]
    await run.started.wait()
    await _until(lambda: len(batcher._queue) == 5)
    run.gate.set()
    assert await asyncio.gather(*tasks) == [i * 10 for i in range(8)]
    assert run.batches == [[0, 1, 2], [3, 4, 5], [6, 7]]
    await batcher.close(5)


async def test_a_cancelled_caller_does_not_disturb_its_batch():
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run)
    run.gate.clear()
    blocker = asyncio.create_task(batcher.submit(0))
    await run.started.wait()
    leaving = asyncio.create_task(batcher.submit(1))
    staying = asyncio.create_task(batcher.submit(2))
    await _until(lambda: len(batcher._queue) == 2)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    run.gate.set()
    assert await blocker == 0 and await staying == 20
    # The item of the caller that left was still run with its batch-mate (its work is the batcher's).
    assert run.batches == [[0], [1, 2]]
    await batcher.close(5)


async def test_a_caller_cancelled_while_its_batch_runs_does_not_cancel_the_batch():
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run)
    run.gate.clear()
    leaving = asyncio.create_task(batcher.submit(1))
    await run.started.wait()
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    run.gate.set()
    assert await batcher.submit(2) == 20
    assert run.batches == [[1], [2]]
    await batcher.close(5)


async def test_close_runs_what_is_queued_then_refuses_new_items():
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run)
    run.gate.clear()
    tasks = [asyncio.create_task(batcher.submit(0))]
    await run.started.wait()
    tasks += [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
    await _until(lambda: len(batcher._queue) == 2)
    closing = asyncio.create_task(batcher.close(5))
    await _until(lambda: batcher._closing)
    with pytest.raises(BatcherClosed):
        await batcher.submit(9)
    run.gate.set()
    await closing
    assert await asyncio.gather(*tasks) == [0, 10, 20]
    assert run.batches == [[0], [1, 2]]


async def test_close_past_its_deadline_fails_the_running_and_queued_items():
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run)
    run.gate.clear()  # never opened: the batch hangs
    running = asyncio.create_task(batcher.submit(1))
    await run.started.wait()
    queued = asyncio.create_task(batcher.submit(2))
    await _until(lambda: len(batcher._queue) == 1)
    await batcher.close(0.05)
    for task in (running, queued):
        with pytest.raises(BatcherClosed):
            await task
    # A closed batcher is a lost connection to its callers: they answer 503 and retry.
    assert issubclass(BatcherClosed, ConnectionError)


async def test_closing_an_unused_batcher_is_immediate():
    batcher: Batcher[int, int] = Batcher(Recorder())
    await batcher.close(5)
    with pytest.raises(BatcherClosed):
        await batcher.submit(1)
