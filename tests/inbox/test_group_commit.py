"""inbox.group_commit on a real PostgreSQL: many units of work, one transaction, each answered alone."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from gateway.http import DB_UNAVAILABLE  # what the gateway answers 503 for
from inbox.batcher import Batcher
from inbox.db import create_pool
from inbox.eventlog import PendingEvent
from inbox.group_commit import Committed, Staged, commit_batch
from inbox.ingest import ingest_result, ingest_work
from schema.enums import EventName, InboundStatus
from schema.events import ParsedPayload, ParseError
from tests.inbox.helpers import make_account_with_channel, text_message
from tests.tcp_proxy import through


def _work(channel, key, *events, parsed=None):
    return ingest_work(channel=channel, payload="{}", dedup_key=key,
                       parsed=parsed if parsed is not None else ParsedPayload(events=events))


async def test_one_batch_commits_each_unit_once_answers_each_alone_and_logs_gap_free_per_account(pool):
    account_a, _, channel_a = await make_account_with_channel(pool, "a")
    account_b, _, channel_b = await make_account_with_channel(pool, "b")

    async def broken(conn: asyncpg.Connection) -> Staged[None]:
        # Writes a row, then fails: its savepoint must take the row back with it.
        await conn.execute(
            "INSERT INTO inbound_events (account_id, channel_id, dedup_key, status, payload)"
            " VALUES ($1, $2, 'broken', 'processed', '{}')", account_a, channel_a.id)
        await conn.execute("SELECT 1 / 0")
        raise AssertionError("unreachable")

    works = [
        _work(channel_a, "a1", text_message("wamid.a1", contact="491510000001")),
        _work(channel_b, "b1", text_message("wamid.b1", contact="491510000002")),
        broken,
        _work(channel_a, "a1", text_message("wamid.a1", contact="491510000001")),  # same body again
        _work(channel_a, "a2", text_message("wamid.a1", contact="491510000001")),  # same message, new body
        _work(channel_a, "bad", parsed=ParseError("not a webhook")),
        _work(channel_a, "a3", text_message("wamid.a3", contact="491510000001")),
        _work(channel_b, "b2", text_message("wamid.b2", contact="491510000003")),
    ]
    outcomes = await commit_batch(pool, works)

    assert isinstance(outcomes[2], asyncpg.DivisionByZeroError)
    results = [None if isinstance(o, BaseException) else ingest_result(o) for o in outcomes]
    a1, b1, _, dup, same_msg, bad, a3, b2 = results
    assert a1.status == InboundStatus.PROCESSED and [e.event for e in a1.events] == [
        EventName.CONVERSATION_CREATED, EventName.MESSAGE_CREATED]
    assert dup.duplicate and dup.events == []
    assert same_msg.status == InboundStatus.PROCESSED and same_msg.events == []
    assert bad.status == InboundStatus.FAILED and bad.error == "not a webhook" and bad.events == []
    assert [e.event for e in a3.events] == [EventName.CONVERSATION_UPDATED, EventName.MESSAGE_CREATED]
    # Each account's seqs are gap-free, in the order of the batch.
    assert [e.seq for e in a1.events + a3.events] == [1, 2, 3, 4]
    assert [e.seq for e in b1.events + b2.events] == [1, 2, 3, 4]
    assert all(e.account_id == account_b for e in b1.events + b2.events)

    assert await pool.fetchval("SELECT count(*) FROM inbound_events WHERE dedup_key = 'broken'") == 0
    statuses = dict(await pool.fetch("SELECT dedup_key, status FROM inbound_events"))
    assert statuses == {"a1": "processed", "b1": "processed", "a2": "processed", "bad": "failed",
                        "a3": "processed", "b2": "processed"}
    assert await pool.fetchval("SELECT count(*) FROM messages") == 4
    for account, last in ((account_a, 4), (account_b, 4)):
        seqs = [r["seq"] for r in await pool.fetch("SELECT seq FROM events WHERE account_id = $1 ORDER BY seq",
                                                     account)]
        assert seqs == list(range(1, last + 1))
        assert await pool.fetchval("SELECT last_seq FROM accounts WHERE id = $1", account) == last


async def test_a_lone_unit_that_fails_rolls_back_only_itself(pool):
    account, _, channel = await make_account_with_channel(pool)

    async def broken(conn: asyncpg.Connection) -> Staged[None]:
        await conn.execute("UPDATE accounts SET name = 'changed' WHERE id = $1", account)
        await conn.execute("SELECT 1 / 0")
        raise AssertionError("unreachable")

    (outcome,) = await commit_batch(pool, [broken])
    assert isinstance(outcome, asyncpg.DivisionByZeroError)
    assert await pool.fetchval("SELECT name FROM accounts WHERE id = $1", account) == "acme"
    (ok,) = await commit_batch(pool, [_work(channel, "k", text_message())])
    assert isinstance(ok, Committed) and [e.seq for e in ok.records] == [1, 2]


async def test_a_database_outage_fails_every_write_of_the_batch_and_nothing_is_half_stored(db_url, pool, db_proxy):
    _, _, channel = await make_account_with_channel(pool)
    proxied = await create_pool(through(db_url, db_proxy.port), min_size=1, max_size=2)
    batcher: Batcher = Batcher(lambda works: commit_batch(proxied, works))
    try:
        works = [_work(channel, f"k{i}", text_message(f"wamid.{i}", contact=f"4915100000{i:02d}")) for i in range(6)]
        await db_proxy.cut()
        outcomes = await asyncio.gather(*(batcher.submit(w) for w in works), return_exceptions=True)
        assert all(isinstance(o, DB_UNAVAILABLE) for o in outcomes), outcomes
        assert await pool.fetchval("SELECT count(*) FROM inbound_events") == 0

        await db_proxy.start()
        # The provider redelivers; a stale pooled connection may fail once more.
        async with asyncio.timeout(15):
            while True:
                outcomes = await asyncio.gather(*(batcher.submit(w) for w in works), return_exceptions=True)
                if not any(isinstance(o, BaseException) for o in outcomes):
                    break
        assert all(isinstance(o, Committed) for o in outcomes)
    finally:
        await batcher.close(5)
        await proxied.close()
    assert await pool.fetchval("SELECT count(*) FROM messages") == 6
    seqs = [r["seq"] for r in await pool.fetch("SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_two_batches_that_deadlock_each_commit_every_unit(pool, caplog):
    caplog.set_level(logging.INFO, logger="inbox.group_commit")
    account_a, _, _ = await make_account_with_channel(pool, "a")
    account_b, _, _ = await make_account_with_channel(pool, "b")
    locked = {account_a: asyncio.Event(), account_b: asyncio.Event()}

    def locker(first: int, then: int | None):
        # Locks ``first``, waits until the other batch locked ``then``'s row, then locks it too.
        async def work(conn: asyncpg.Connection) -> Staged[int]:
            await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", first)
            if then is not None:
                locked[first].set()
                await locked[then].wait()
            return Staged(first, first, [PendingEvent(EventName.CONVERSATION_UPDATED, None, {"by": first})])
        return work

    one = [locker(account_a, account_b), locker(account_b, None)]
    two = [locker(account_b, account_a), locker(account_a, None)]
    async with asyncio.timeout(30):
        first, second = await asyncio.gather(commit_batch(pool, one), commit_batch(pool, two))
    # PostgreSQL broke the deadlock by failing one batch; its units were committed one by one.
    assert "DeadlockDetectedError" in caplog.text and "committing each alone" in caplog.text
    assert all(isinstance(o, Committed) for o in first + second), first + second
    for account in (account_a, account_b):
        seqs = [r["seq"] for r in await pool.fetch("SELECT seq FROM events WHERE account_id = $1 ORDER BY seq",
                                                     account)]
        assert seqs == [1, 2]
