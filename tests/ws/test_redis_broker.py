"""RedisBroker against a real Redis: cross-process delivery, own messages, outages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from gateway.redis_broker import RedisBroker, record_from_json
from gateway.supervise import TaskGroup
from inbox.eventlog import EventRecord
from tests.redis_server import RedisProcess, free_port
from tests.ws.helpers import eventually


def record(seq: int, account_id: int = 1) -> EventRecord:
    return EventRecord(account_id, seq, "message.created", 7, {"text": "hallo", "n": seq},
                       datetime(2026, 3, 14, 12, 0, seq, tzinfo=UTC))


def test_an_event_survives_the_trip_through_its_json():
    original = record(3)
    assert record_from_json(original.to_json()) == original


async def test_events_reach_other_brokers_once_and_the_publisher_only_locally(redis_url, redis_prefix):
    tasks = TaskGroup()
    a, b = RedisBroker(redis_url, prefix=redis_prefix), RedisBroker(redis_url, prefix=redis_prefix)
    seen_a: list[int] = []
    seen_b: list[int] = []
    got_all = asyncio.Event()
    a.add_listener(lambda r: seen_a.append(r.seq))

    def on_b(r: EventRecord) -> None:
        seen_b.append(r.seq)
        if len(seen_b) == 3:
            got_all.set()

    b.add_listener(on_b)
    try:
        a.start(tasks)
        b.start(tasks)
        await eventually(lambda: a.healthy() and b.healthy())
        await a.publish([record(1), record(2)])
        await a.publish([record(3)])
        await asyncio.wait_for(got_all.wait(), 10)
        await asyncio.sleep(0.2)  # room for a wrong echo to a
        assert seen_b == [1, 2, 3]
        assert seen_a == [1, 2, 3]
    finally:
        await tasks.close()
        await a.close()
        await b.close()


async def test_without_redis_publish_still_delivers_locally_and_health_says_unavailable(redis_prefix):
    tasks = TaskGroup()
    broker = RedisBroker(f"redis://127.0.0.1:{free_port()}/0", prefix=redis_prefix)
    seen: list[int] = []
    broker.add_listener(lambda r: seen.append(r.seq))
    try:
        broker.start(tasks)
        await asyncio.sleep(0.3)
        assert not broker.healthy()
        await broker.publish([record(1)])
        assert seen == [1]
    finally:
        await tasks.close()
        await broker.close()


async def test_a_reconnect_tells_listeners_to_catch_up(redis_prefix):
    redis = RedisProcess()
    redis.start()
    tasks = TaskGroup()
    broker = RedisBroker(redis.url, prefix=redis_prefix)
    reconnects = asyncio.Queue()
    broker.add_reconnect_listener(lambda: reconnects.put_nowait(1))
    try:
        broker.start(tasks)
        await asyncio.wait_for(reconnects.get(), 10)  # the first connect counts too
        redis.stop()
        await eventually(lambda: not broker.healthy())
        redis.start()
        await asyncio.wait_for(reconnects.get(), 30)
        assert broker.healthy()
    finally:
        await tasks.close()
        await broker.close()
        redis.stop()
