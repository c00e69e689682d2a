"""The outbound queue and worker against a real PostgreSQL, with scripted senders."""

from __future__ import annotations

import asyncio
import random

import pytest

from gateway.outbound_worker import OutboundConfig, OutboundWorker
from inbox.db import create_pool
from inbox.outbound import OutboundRejected, enqueue_message, retry_delay
from schema.enums import ChannelType
from schema.outbound import PermanentSendError, SendResult, TransientSendError
from tests.api.helpers import ScriptedSender, inbound, make_account, make_channel, make_ctx

FAST = OutboundConfig(concurrency=1, poll_interval=0.01, backoff_base=0.001, backoff_cap=0.01,
                      lease_seconds=300, send_timeout=10, recover_interval=0.05)


@pytest.fixture
async def conversation(pool):
    account_id, _ = await make_account(pool)
    channel = await make_channel(pool, account_id, provider_key="111")
    conversation_id = await inbound(pool, channel, external_id="wamid.in1")
    return account_id, channel, conversation_id


async def enqueue(pool, account_id, conversation_id, text="hello", **kw):
    async with pool.acquire() as conn:
        return await enqueue_message(conn, account_id=account_id, conversation_id=conversation_id, text=text,
                                     author="agent-1", **kw)


async def drain(worker: OutboundWorker, pool) -> None:
    """Run the worker until no job is queued or in flight."""
    async with asyncio.timeout(30):
        while True:
            if not await worker.run_once():
                left = await pool.fetchval("SELECT count(*) FROM outbound_jobs WHERE status IN ('queued', 'in_flight')")
                if left == 0:
                    return
                await asyncio.sleep(0.005)


async def attempts(pool, message_id):
    return [
        (r["attempt"], r["outcome"], r["error_code"])
        for r in await pool.fetch(
            """SELECT a.attempt, a.outcome, a.error_code FROM outbound_attempts a
               JOIN outbound_jobs j ON j.id = a.job_id WHERE j.message_id = $1 ORDER BY a.attempt""",
            message_id,
        )
    ]


async def test_a_sender_failing_twice_then_succeeding_leaves_the_message_sent_after_three_attempts(
    db_url, pool, conversation
):
    account_id, _, conversation_id = conversation
    sender = ScriptedSender([TransientSendError("429", "slow down"), TransientSendError("503", "try later")])
    worker = OutboundWorker(make_ctx(db_url, pool, senders={ChannelType.WHATSAPP: sender}), FAST)
    queued = await enqueue(pool, account_id, conversation_id)

    await drain(worker, pool)

    msg = await pool.fetchrow("SELECT status, external_id, sent_at, error_code FROM messages WHERE id = $1",
                              queued.message_id)
    assert msg["status"] == "sent"
    assert msg["external_id"] == f"wamid.out-{queued.message_id}"
    assert msg["sent_at"] is not None and msg["error_code"] is None
    assert await attempts(pool, queued.message_id) == [
        (1, "transient_error", "429"), (2, "transient_error", "503"), (3, "sent", None),
    ]
    assert [c.attempt for c in sender.calls] == [1, 2, 3]
    assert sender.calls[0].to == "4915112345678" and sender.calls[0].text == "hello"
    assert sender.calls[0].channel_secrets["access_token"] == "sekrit-token"
    names = [r["name"] for r in await pool.fetch("SELECT name FROM events WHERE account_id = $1 ORDER BY seq",
                                                 account_id)]
    assert names[-3:] == ["message.created", "conversation.updated", "message.updated"]
    last = await pool.fetchval("SELECT data FROM events WHERE account_id = $1 ORDER BY seq DESC LIMIT 1", account_id)
    assert last["status"] == "sent" and last["id"] == queued.message_id


async def test_a_permanent_failure_fails_the_message_with_the_providers_reason(db_url, pool, conversation):
    account_id, _, conversation_id = conversation
    sender = ScriptedSender([PermanentSendError("131047", "Re-engagement message: more than 24 hours passed")])
    worker = OutboundWorker(make_ctx(db_url, pool, senders={ChannelType.WHATSAPP: sender}), FAST)
    queued = await enqueue(pool, account_id, conversation_id)

    await drain(worker, pool)

    msg = await pool.fetchrow("SELECT status, error_code, error_message, failed_at FROM messages WHERE id = $1",
                              queued.message_id)
    assert (msg["status"], msg["error_code"]) == ("failed", "131047")
    assert "24 hours" in msg["error_message"] and msg["failed_at"] is not None
    assert await attempts(pool, queued.message_id) == [(1, "permanent_error", "131047")]
    assert len(sender.calls) == 1
    event = await pool.fetchrow("SELECT name, data FROM events WHERE account_id = $1 ORDER BY seq DESC LIMIT 1",
                                account_id)
    assert event["name"] == "message.updated"
    assert event["data"]["error"] == {"code": "131047", "message": msg["error_message"]}


async def test_transient_failures_stop_at_max_attempts_and_fail_the_message(db_url, pool, conversation):
    account_id, _, conversation_id = conversation
    sender = ScriptedSender([TransientSendError("503", "down")] * 5)
    worker = OutboundWorker(make_ctx(db_url, pool, senders={ChannelType.WHATSAPP: sender}), FAST)
    queued = await enqueue(pool, account_id, conversation_id, max_attempts=3)

    await drain(worker, pool)

    msg = await pool.fetchrow("SELECT status, error_code, error_message FROM messages WHERE id = $1",
                              queued.message_id)
    assert (msg["status"], msg["error_code"]) == ("failed", "503")
    assert "gave up after 3 attempts" in msg["error_message"]
    assert len(sender.calls) == 3
    assert await pool.fetchval("SELECT status FROM outbound_jobs WHERE message_id = $1", queued.message_id) == "failed"


async def test_a_providers_retry_after_sets_the_next_attempt_time(db_url, pool, conversation):
    account_id, _, conversation_id = conversation
    sender = ScriptedSender([TransientSendError("429", "flood", retry_after=3600)])
    worker = OutboundWorker(make_ctx(db_url, pool, senders={ChannelType.WHATSAPP: sender}), FAST)
    queued = await enqueue(pool, account_id, conversation_id)

    assert await worker.run_once()

    job = await pool.fetchrow("SELECT status, next_attempt_at - now() AS wait FROM outbound_jobs WHERE message_id = $1",
                              queued.message_id)
    assert job["status"] == "queued"
    assert job["wait"].total_seconds() >= 3599
    assert not await worker.run_once()  # not due yet


def test_retry_delays_grow_exponentially_with_jitter_up_to_the_cap():
    rng = random.Random(7)
    for attempt in range(1, 12):
        exp = min(60.0, 1.0 * 2 ** (attempt - 1))
        delay = retry_delay(attempt, base=1.0, cap=60.0, rng=rng)
        assert exp / 2 <= delay <= exp
    assert 30 <= retry_delay(1, base=1.0, cap=60.0, retry_after=30, rng=rng) <= 33


async def test_status_updates_that_arrived_before_the_send_finished_are_applied_when_it_gets_its_id(
    db_url, pool, conversation
):
    account_id, channel, conversation_id = conversation
    queued = await enqueue(pool, account_id, conversation_id)
    # A "delivered" webhook overtook our commit of the send result: ingest parked it.
    await pool.execute(
        "INSERT INTO pending_updates (account_id, channel_id, external_id, event) VALUES ($1, $2, $3, $4)",
        account_id, channel.id, f"wamid.out-{queued.message_id}",
        {"kind": "status", "external_id": f"wamid.out-{queued.message_id}", "status": "delivered",
         "occurred_at": "2026-03-14T12:05:00Z"},
    )
    worker = OutboundWorker(make_ctx(db_url, pool, senders={ChannelType.WHATSAPP: ScriptedSender()}), FAST)

    await drain(worker, pool)

    msg = await pool.fetchrow("SELECT status, sent_at, delivered_at FROM messages WHERE id = $1", queued.message_id)
    assert msg["status"] == "delivered" and msg["sent_at"] and msg["delivered_at"]
    assert await pool.fetchval("SELECT count(*) FROM pending_updates") == 0


async def test_two_workers_on_separate_pools_never_send_the_same_job(db_url, pool):
    account_id, _ = await make_account(pool)
    channel = await make_channel(pool, account_id, provider_key="111")
    message_ids = []
    for n in range(50):
        conversation_id = await inbound(pool, channel, external_id=f"wamid.in{n}", contact=f"49151{n:07d}")
        message_ids.append((await enqueue(pool, account_id, conversation_id, text=f"reply {n}")).message_id)
    sender = ScriptedSender(pause=0.001)  # shared: counts every send of both workers
    pools = [await create_pool(db_url, min_size=1, max_size=4) for _ in range(2)]
    try:
        workers = [
            OutboundWorker(make_ctx(db_url, p, senders={ChannelType.WHATSAPP: sender}), FAST, pool=p,
                           node_id=f"node-{i}")
            for i, p in enumerate(pools)
        ]
        # Four concurrent claimers per worker, eight in all.
        await asyncio.gather(*(drain(w, pool) for w in workers for _ in range(4)))
    finally:
        for p in pools:
            await p.close()

    sent = sorted(r.message_id for r in sender.calls)
    assert sent == sorted(message_ids)  # each exactly once
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE status = 'sent'") == 50
    nodes = {r["locked_by"] for r in await pool.fetch("SELECT locked_by FROM outbound_jobs")}
    assert nodes <= {"node-0", "node-1"}


class _DiesAfterSending:
    """Delivers the message, then the process "dies" before the worker can record it."""

    def __init__(self) -> None:
        self.delivered: list[int] = []
        self.dead = asyncio.Event()

    async def send(self, request):
        self.delivered.append(request.message_id)
        self.dead.set()
        await asyncio.Event().wait()  # never returns: the task is killed here
        return SendResult(external_id="never")


async def test_a_worker_dying_between_send_and_commit_does_not_resend_and_reports_delivery_unknown(
    db_url, pool, conversation
):
    account_id, _, conversation_id = conversation
    queued = await enqueue(pool, account_id, conversation_id)
    doomed_sender = _DiesAfterSending()
    doomed_pool = await create_pool(db_url, min_size=1, max_size=2)
    doomed = OutboundWorker(make_ctx(db_url, doomed_pool, senders={ChannelType.WHATSAPP: doomed_sender}), FAST,
                            pool=doomed_pool, node_id="doomed")
    task = asyncio.create_task(doomed.run_once())
    await doomed_sender.dead.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    doomed_pool.terminate()  # its connections vanish like a killed process's

    survivor_sender = ScriptedSender()
    survivor = OutboundWorker(
        make_ctx(db_url, pool, senders={ChannelType.WHATSAPP: survivor_sender}),
        OutboundConfig(poll_interval=0.01, lease_seconds=0.0, recover_interval=0.0),
        node_id="survivor",
    )
    # Before the lease expires nothing happens to the job; here the lease is 0 s.
    assert await survivor.recover() == 1
    assert not await survivor.run_once()

    assert survivor_sender.calls == [] and doomed_sender.delivered == [queued.message_id]
    msg = await pool.fetchrow("SELECT status, error_code, error_message FROM messages WHERE id = $1",
                              queued.message_id)
    assert (msg["status"], msg["error_code"]) == ("failed", "delivery_unknown")
    assert "not sent again" in msg["error_message"]
    assert await attempts(pool, queued.message_id) == [(1, "unknown", "delivery_unknown")]
    assert await survivor.recover() == 0  # settled once


async def test_a_job_within_its_lease_is_not_recovered(db_url, pool, conversation):
    account_id, _, conversation_id = conversation
    await enqueue(pool, account_id, conversation_id)
    async with pool.acquire() as conn:
        from inbox.outbound import claim_next
        assert await claim_next(conn, "busy-node") is not None
    worker = OutboundWorker(make_ctx(db_url, pool), OutboundConfig(lease_seconds=300))
    assert await worker.recover() == 0
    assert await pool.fetchval("SELECT status FROM outbound_jobs") == "in_flight"


async def test_a_send_outliving_its_lease_still_records_the_late_success(db_url, pool, conversation):
    account_id, _, conversation_id = conversation
    queued = await enqueue(pool, account_id, conversation_id)
    release, sending = asyncio.Event(), asyncio.Event()

    class SlowSender:
        async def send(self, request):
            sending.set()
            await release.wait()
            return SendResult(external_id="wamid.late")

    slow = OutboundWorker(make_ctx(db_url, pool, senders={ChannelType.WHATSAPP: SlowSender()}), FAST)
    task = asyncio.create_task(slow.run_once())
    await sending.wait()
    judge = OutboundWorker(make_ctx(db_url, pool), OutboundConfig(lease_seconds=0.0))
    assert await judge.recover() == 1
    release.set()
    await task

    msg = await pool.fetchrow("SELECT status, external_id, error_code FROM messages WHERE id = $1", queued.message_id)
    assert (msg["status"], msg["external_id"], msg["error_code"]) == ("sent", "wamid.late", None)
    assert await attempts(pool, queued.message_id) == [(1, "sent", None)]


async def test_a_message_for_a_deleted_channel_fails_without_a_send(db_url, pool, conversation):
    account_id, channel, conversation_id = conversation
    queued = await enqueue(pool, account_id, conversation_id)
    await pool.execute("UPDATE channels SET deleted_at = now() WHERE id = $1", channel.id)
    sender = ScriptedSender()
    await drain(OutboundWorker(make_ctx(db_url, pool, senders={ChannelType.WHATSAPP: sender}), FAST), pool)
    assert sender.calls == []
    row = await pool.fetchrow("SELECT status, error_code FROM messages WHERE id = $1", queued.message_id)
    assert (row["status"], row["error_code"]) == ("failed", "channel_deleted")


async def test_one_idempotency_key_makes_one_message_and_one_job_even_when_raced(pool, conversation):
    account_id, _, conversation_id = conversation
    results = await asyncio.gather(
        *(enqueue(pool, account_id, conversation_id, idempotency_key="k-1") for _ in range(6))
    )
    assert len({r.message_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE direction = 'outbound'") == 1
    assert await pool.fetchval("SELECT count(*) FROM outbound_jobs") == 1
    assert await pool.fetchval("SELECT count(*) FROM events WHERE name = 'message.created' AND data->>'direction' = "
                               "'outbound'") == 1


async def test_an_idempotency_key_reused_for_another_text_is_refused(pool, conversation):
    account_id, _, conversation_id = conversation
    await enqueue(pool, account_id, conversation_id, idempotency_key="k-2")
    with pytest.raises(OutboundRejected) as caught:
        await enqueue(pool, account_id, conversation_id, text="something else", idempotency_key="k-2")
    assert caught.value.code == "idempotency_key_reused"


async def test_a_reply_sets_the_conversations_first_response_time(pool, conversation):
    account_id, _, conversation_id = conversation
    await enqueue(pool, account_id, conversation_id)
    row = await pool.fetchrow("SELECT first_inbound_at, first_response_at FROM conversations WHERE id = $1",
                              conversation_id)
    assert row["first_inbound_at"] is not None and row["first_response_at"] is not None


async def test_provider_statuses_move_a_sent_message_forward_afterwards(db_url, pool, conversation):
    from datetime import UTC, datetime

    from inbox.ingest import apply_events
    from schema.events import StatusUpdate

    account_id, channel, conversation_id = conversation
    queued = await enqueue(pool, account_id, conversation_id)
    await drain(OutboundWorker(make_ctx(db_url, pool, senders={ChannelType.WHATSAPP: ScriptedSender()}), FAST), pool)
    wamid = f"wamid.out-{queued.message_id}"
    async with pool.acquire() as conn, conn.transaction():
        await apply_events(conn, channel=channel, events=[
            StatusUpdate(external_id=wamid, status="read", occurred_at=datetime.now(UTC)),
            StatusUpdate(external_id=wamid, status="delivered", occurred_at=datetime.now(UTC)),
        ])
    row = await pool.fetchrow("SELECT status, delivered_at, read_at FROM messages WHERE id = $1", queued.message_id)
    assert row["status"] == "read" and row["delivered_at"] and row["read_at"]
