"""Stopping background tasks: bounded, and never at the cost of the stopper's own cancellation."""

from __future__ import annotations

import asyncio
import logging

from gateway.supervise import TaskGroup, stop_tasks


async def _wait_for(event: asyncio.Event) -> None:
    async with asyncio.timeout(10):
        await event.wait()


def _slow_to_stop(started: asyncio.Event, entered: asyncio.Event, released: asyncio.Event):
    async def child() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            entered.set()
            await released.wait()  # a connection that takes a while to close

    return child()


async def test_a_stopper_cancelled_while_it_waits_for_a_child_is_itself_cancelled():
    started, entered, released = asyncio.Event(), asyncio.Event(), asyncio.Event()
    child = asyncio.create_task(_slow_to_stop(started, entered, released))
    await _wait_for(started)  # cancelled before it ran, it would have no finally to run
    stopper = asyncio.create_task(stop_tasks([child], within=30))
    await _wait_for(entered)
    stopper.cancel()
    done, _ = await asyncio.wait({stopper}, timeout=10)
    assert stopper in done and stopper.cancelled()  # not swallowed as if it were the child's
    released.set()
    await asyncio.wait({child}, timeout=10)
    assert child.cancelled()


async def test_a_task_that_ignores_cancellation_is_abandoned_at_the_deadline_and_logged(caplog):
    started, released, ended = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        started.set()
        try:
            while not released.is_set():
                try:
                    await released.wait()
                except asyncio.CancelledError:
                    continue  # the bug under test
        finally:
            ended.set()

    group = TaskGroup(stop_timeout=0.2)
    group.spawn(stubborn(), name="stubborn")
    group.spawn(asyncio.Event().wait(), name="polite")
    await _wait_for(started)
    with caplog.at_level(logging.ERROR, logger="gateway.supervise"):
        await group.close()
    messages = [r.getMessage() for r in caplog.records]
    assert any("stubborn" in m and "abandoned" in m for m in messages)
    assert not any("polite" in m for m in messages)
    assert not ended.is_set()
    released.set()
    await _wait_for(ended)
