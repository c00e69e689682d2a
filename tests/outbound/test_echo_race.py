"""A provider echo of our own send that arrives before the worker commits the provider's id."""

from __future__ import annotations

from inbox.db import acquire
from inbox.ingest import ingest_payload
from inbox.outbound import claim_next, enqueue_message, record_sent
from schema.enums import MessageDirection
from schema.events import ParsedPayload
from tests.inbox.helpers import T0, make_account_with_channel, minutes, text_message


async def _ingest(pool, channel, event):
    return await ingest_payload(pool, channel=channel, payload="{}", dedup_key=None,
                                parsed=ParsedPayload(events=(event,)))


async def test_an_echo_that_beats_the_workers_commit_becomes_our_message_not_a_second_one(pool):
    account_id, _, channel = await make_account_with_channel(pool, provider_key="110987654321098")
    await _ingest(pool, channel, text_message("wamid.in", text="Wo ist mein Paket?"))
    conversation_id = await pool.fetchval("SELECT id FROM conversations")
    async with acquire(pool) as conn:
        queued = await enqueue_message(conn, account_id=account_id, conversation_id=conversation_id,
                                       text="Ja, sie ist unterwegs.", author="agent")
        job = await claim_next(conn, "node-a")
    assert job is not None and job.message_id == queued.message_id

    # The provider accepted the send and its echo arrives first.
    echo = text_message("wamid.ours", text="Ja, sie ist unterwegs.", at=T0 + minutes(1),
                        direction=MessageDirection.OUTBOUND)
    result = await _ingest(pool, channel, echo)
    assert [e.event for e in result.events] == ["message.updated"]
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE direction = 'outbound'") == 1
    assert await pool.fetchval("SELECT external_id FROM messages WHERE id = $1", job.message_id) == "wamid.ours"

    async with acquire(pool) as conn:
        await record_sent(conn, job, "wamid.ours", None)
    row = await pool.fetchrow("SELECT status, external_id, sent_at FROM messages WHERE id = $1", job.message_id)
    assert (row["status"], row["external_id"]) == ("sent", "wamid.ours") and row["sent_at"] is not None
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE direction = 'outbound'") == 1


async def test_an_echo_of_a_message_sent_elsewhere_is_stored_as_its_own_outbound_message(pool):
    account_id, _, channel = await make_account_with_channel(pool, provider_key="110987654321098")
    await _ingest(pool, channel, text_message("wamid.in"))
    conversation_id = await pool.fetchval("SELECT id FROM conversations")
    async with acquire(pool) as conn:
        await enqueue_message(conn, account_id=account_id, conversation_id=conversation_id,
                              text="from the inbox", author="agent")
        await claim_next(conn, "node-a")
    other = text_message("wamid.phone", text="typed on the business phone", direction=MessageDirection.OUTBOUND)
    await _ingest(pool, channel, other)
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE direction = 'outbound'") == 2
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE external_id IS NULL") == 1
