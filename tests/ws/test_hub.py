"""The hub without sockets: ordering, exactly-once, gap filling and overflow against a real event log."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from gateway.supervise import TaskGroup
from gateway.ws_hub import CLOSE_SLOW_CONSUMER, FrameQueue, Subscriber, WsHub
from schema.enums import EventName
from schema.ws import parse_topic
from tests.ws.helpers import make_account, write_events


@pytest.fixture
async def hub(pool):
    tasks = TaskGroup()
    yield WsHub(pool, tasks, check_interval=3600)
    await tasks.close()


def subscriber(account_id: int, cursor: int = 0, queue_size: int = 10_000, topic: str = "account") -> Subscriber:
    sub = Subscriber(account_id, queue_size)
    sub.set_topics([parse_topic(topic)])
    sub.cursor = cursor
    return sub


async def drain(sub: Subscriber, count: int) -> list[int]:
    seqs = []
    async with asyncio.timeout(10):
        while len(seqs) < count:
            seqs.append(json.loads(await sub.queue.get())["seq"])
    return seqs


@pytest.mark.parametrize("seed", range(4))
async def test_shuffled_duplicated_and_partly_missing_deliveries_come_out_once_in_order(pool, hub, seed):
    account_id, _ = await make_account(pool)
    sub = subscriber(account_id)
    await hub.go_live(sub)
    records = await write_events(pool, account_id, 60)
    rng = random.Random(seed)
    offered = [r for r in records if rng.random() > 0.2]  # some never published
    offered += rng.sample(offered, len(offered) // 2)  # some published twice
    rng.shuffle(offered)
    offered.append(records[-1])  # the last one reveals every gap
    for record in offered:
        hub.on_event(record)
    assert await drain(sub, 60) == list(range(1, 61))
    assert len(sub.queue) == 0


async def test_a_subscriber_joining_while_events_flow_gets_each_exactly_once(pool, hub):
    account_id, _ = await make_account(pool)
    early = subscriber(account_id)
    await hub.go_live(early)

    hundred = asyncio.Event()

    class Local:
        async def publish(self, records):
            for record in records:
                hub.on_event(record)
                if record.seq >= 100:
                    hundred.set()

    writers = [asyncio.create_task(write_events(pool, account_id, 150, broker=Local())) for _ in range(3)]
    await hundred.wait()
    late = subscriber(account_id, cursor=90)
    await hub.go_live(late)
    await asyncio.gather(*writers)
    assert await drain(late, 360) == list(range(91, 451))
    assert await drain(early, 450) == list(range(1, 451))


async def test_the_periodic_check_delivers_events_that_were_never_published(pool, hub):
    account_id, _ = await make_account(pool)
    sub = subscriber(account_id)
    await hub.go_live(sub)
    await write_events(pool, account_id, 3)
    await hub.check_now()
    assert await drain(sub, 3) == [1, 2, 3]


async def test_topics_filter_but_the_cursor_still_moves_past_other_events(pool, hub):
    account_id, _ = await make_account(pool)
    sub = subscriber(account_id, topic="calls")
    await hub.go_live(sub)
    records = await write_events(pool, account_id, 2)
    records += await write_events(pool, account_id, 1, name=EventName.CALL_UPDATED)
    for record in records:
        hub.on_event(record)
    assert await drain(sub, 1) == [3]
    assert sub.cursor == 3


async def test_a_live_subscriber_whose_queue_overflows_is_dropped_and_its_queue_freed(pool, hub):
    account_id, _ = await make_account(pool)
    slow, fast = subscriber(account_id, queue_size=5), subscriber(account_id)
    await hub.go_live(slow)
    await hub.go_live(fast)
    for record in await write_events(pool, account_id, 8):
        hub.on_event(record)
    assert slow.dropped.done() and slow.dropped.result() == CLOSE_SLOW_CONSUMER
    assert len(slow.queue) == 0
    assert slow not in hub.streams[account_id].live
    assert await drain(fast, 8) == list(range(1, 9))


async def test_events_of_accounts_with_no_subscriber_here_are_ignored(pool, hub):
    account_id, _ = await make_account(pool)
    for record in await write_events(pool, account_id, 3):
        hub.on_event(record)
    assert hub.streams == {}


async def test_replay_waits_for_room_instead_of_overflowing(pool, hub):
    account_id, _ = await make_account(pool)
    await write_events(pool, account_id, 30, per_tx=30)
    sub = subscriber(account_id, queue_size=4)
    replay = asyncio.create_task(hub.go_live(sub))
    got = await drain(sub, 30)
    await replay
    assert got == list(range(1, 31))
    assert not sub.dropped.done()


async def test_frame_queue_offer_refuses_when_full_and_put_waits_for_room():
    queue = FrameQueue(2)
    assert queue.offer("a") and queue.offer("b")
    assert not queue.offer("c")
    waiting = asyncio.create_task(queue.put("c"))
    await asyncio.sleep(0)
    assert not waiting.done()
    assert await queue.get() == "a"
    await waiting
    assert [await queue.get(), await queue.get()] == ["b", "c"]


async def test_seqs_deleted_by_retention_are_skipped_not_waited_for(pool, hub):
    account_id, _ = await make_account(pool)
    await write_events(pool, account_id, 5)
    await pool.execute("DELETE FROM events WHERE account_id = $1 AND seq BETWEEN 2 AND 4", account_id)
    replaying = subscriber(account_id)
    await hub.go_live(replaying)
    assert await drain(replaying, 2) == [1, 5]
    # Live: 6 and 7 committed and deleted before anyone read them; the check moves past them.
    await write_events(pool, account_id, 2)
    await pool.execute("DELETE FROM events WHERE account_id = $1 AND seq IN (6, 7)", account_id)
    await hub.check_now()
    for record in await write_events(pool, account_id, 1):
        hub.on_event(record)
    assert await drain(replaying, 1) == [8]
