"""The event log's seq is per account, strictly increasing and gap-free under concurrent writers."""

from __future__ import annotations

import asyncio

from inbox.accounts import create_account
from inbox.eventlog import PendingEvent, append, fetch_after, latest_seq
from schema.enums import EventName


async def _writer(pool, account_id: int, n: int) -> None:
    for i in range(n):
        async with pool.acquire() as conn, conn.transaction():
            await append(conn, account_id, [PendingEvent(EventName.MESSAGE_CREATED, None, {"i": i})])


async def test_eight_concurrent_writers_of_200_events_produce_seq_1_to_1600_without_gap(pool):
    account_id, _ = await create_account(pool, "acme")
    await asyncio.gather(*[_writer(pool, account_id, 200) for _ in range(8)])
    seqs = [r["seq"] for r in await pool.fetch("SELECT seq FROM events WHERE account_id = $1 ORDER BY seq", account_id)]
    assert seqs == list(range(1, 1601))
    assert await latest_seq(pool, account_id) == 1600


async def test_a_reader_never_sees_a_later_seq_before_an_earlier_one_commits(pool):
    account_id, _ = await create_account(pool, "acme")
    async with pool.acquire() as slow:
        tx = slow.transaction()
        await tx.start()
        await append(slow, account_id, [PendingEvent(EventName.MESSAGE_CREATED, None, {})])
        fast = asyncio.create_task(_writer(pool, account_id, 1))
        await asyncio.sleep(0.3)
        # The second writer waits for the first: nothing is visible out of order.
        assert await pool.fetchval("SELECT count(*) FROM events") == 0
        await tx.commit()
    await fast
    assert [e.seq for e in await fetch_after(pool, account_id, 0)] == [1, 2]


async def test_seqs_are_per_account(pool):
    a, _ = await create_account(pool, "a")
    b, _ = await create_account(pool, "b")
    await _writer(pool, a, 3)
    await _writer(pool, b, 2)
    assert [e.seq for e in await fetch_after(pool, b, 0)] == [1, 2]
    assert [e.seq for e in await fetch_after(pool, a, 1)] == [2, 3]
