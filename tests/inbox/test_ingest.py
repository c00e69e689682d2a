"""DESIGN §5 rules, applied through inbox.ingest on a real PostgreSQL."""

from __future__ import annotations

import asyncio

from inbox.ingest import apply_events, ingest_payload, replay_failed
from schema.enums import MessageDirection
from schema.events import (
    ContactRef,
    MessageDeletion,
    MessageEdit,
    ParsedPayload,
    ParseError,
    Reaction,
    SenderRef,
    StatusUpdate,
)
from tests.inbox.helpers import T0, make_account_with_channel, make_channel, minutes, text_message


async def _ingest(pool, channel, *events, dedup_key=None, payload="{}"):
    return await ingest_payload(pool, channel=channel, payload=payload, dedup_key=dedup_key,
                                parsed=ParsedPayload(events=events))


async def test_the_same_inbound_message_applied_three_times_creates_one_row_and_one_event(pool):
    _, _, channel = await make_account_with_channel(pool)
    msg = text_message()
    results = [await _ingest(pool, channel, msg, dedup_key=f"body-{i}") for i in range(3)]
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    assert await pool.fetchval("SELECT count(*) FROM events WHERE name = 'message.created'") == 1
    assert [e.event for e in results[0].events] == ["conversation.created", "message.created"]
    assert results[1].events == [] and results[2].events == []


async def test_a_redelivered_payload_with_the_same_dedup_key_is_a_duplicate_that_changes_nothing(pool):
    _, _, channel = await make_account_with_channel(pool)
    first = await _ingest(pool, channel, text_message(), dedup_key="update-1")
    again = await _ingest(pool, channel, text_message(), dedup_key="update-1")
    assert not first.duplicate and again.duplicate
    assert await pool.fetchval("SELECT count(*) FROM inbound_events") == 1


async def test_statuses_arriving_read_sent_delivered_end_in_read_with_every_timestamp_kept(pool):
    _, _, channel = await make_account_with_channel(pool)
    await _ingest(pool, channel, text_message("wamid.out", direction=MessageDirection.OUTBOUND))
    # As the outbound worker leaves it: sent to the provider, no status received yet.
    await pool.execute("UPDATE messages SET status = 'pending', sent_at = NULL")
    for status, at in [("read", minutes(3)), ("sent", minutes(1)), ("delivered", minutes(2))]:
        await _ingest(pool, channel, StatusUpdate(external_id="wamid.out", status=status, occurred_at=T0 + at))
        row = await pool.fetchrow("SELECT * FROM messages WHERE external_id = 'wamid.out'")
        assert row["status"] == "read"
    assert row["sent_at"] == T0 + minutes(1)
    assert row["delivered_at"] == T0 + minutes(2)
    assert row["read_at"] == T0 + minutes(3)


async def test_failed_keeps_the_provider_error_and_later_statuses_do_not_revive_it(pool):
    _, _, channel = await make_account_with_channel(pool)
    await _ingest(pool, channel, text_message("wamid.out", direction=MessageDirection.OUTBOUND))
    await _ingest(pool, channel, StatusUpdate(external_id="wamid.out", status="failed", occurred_at=T0 + minutes(1),
                                              error_code="131047", error_message="Re-engagement message"))
    await _ingest(pool, channel, StatusUpdate(external_id="wamid.out", status="delivered", occurred_at=T0 + minutes(2)))
    row = await pool.fetchrow("SELECT * FROM messages WHERE external_id = 'wamid.out'")
    assert (row["status"], row["error_code"], row["error_message"]) == ("failed", "131047", "Re-engagement message")
    assert row["failed_at"] == T0 + minutes(1)


async def test_a_status_for_an_unknown_message_is_kept_and_applied_when_the_message_appears(pool):
    _, _, channel = await make_account_with_channel(pool)
    await _ingest(pool, channel, StatusUpdate(external_id="wamid.late", status="delivered", occurred_at=T0))
    assert await pool.fetchval("SELECT count(*) FROM pending_updates") == 1
    result = await _ingest(pool, channel, text_message("wamid.late", direction=MessageDirection.OUTBOUND))
    row = await pool.fetchrow("SELECT status, delivered_at FROM messages WHERE external_id = 'wamid.late'")
    assert row["status"] == "delivered" and row["delivered_at"] == T0
    assert await pool.fetchval("SELECT count(*) FROM pending_updates") == 0
    assert [e.event for e in result.events][-1] == "message.updated"


async def test_edits_deletions_and_reactions_update_the_original_message(pool):
    _, _, channel = await make_account_with_channel(pool)
    await _ingest(pool, channel, text_message("wamid.a", text="first"))
    await _ingest(pool, channel, MessageEdit(external_id="wamid.a", text="second", edited_at=T0 + minutes(1)))
    await _ingest(pool, channel, Reaction(external_id="wamid.a", emoji="👍", sender="agent", occurred_at=T0))
    await _ingest(pool, channel, Reaction(external_id="wamid.a", emoji="❤", sender="lena", occurred_at=T0))
    await _ingest(pool, channel, Reaction(external_id="wamid.a", emoji="", sender="agent", occurred_at=T0 + minutes(2)))
    replay = await _ingest(pool, channel, MessageEdit(external_id="wamid.a", text="second", edited_at=T0 + minutes(1)))
    await _ingest(pool, channel, MessageDeletion(external_id="wamid.a", deleted_at=T0 + minutes(5)))
    assert replay.events == []
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    row = await pool.fetchrow("SELECT * FROM messages")
    assert row["text"] == "second"
    assert [h["text"] for h in row["edit_history"]] == ["first"]
    assert [(r["emoji"], r["from"]) for r in row["reactions"]] == [("❤", "lena")]
    assert row["edited_at"] == T0 + minutes(1) and row["deleted_at"] == T0 + minutes(5)
    names = await pool.fetch("SELECT name FROM events ORDER BY seq")
    assert [n["name"] for n in names].count("message.updated") == 5


async def test_messages_thread_into_one_conversation_and_a_resolved_one_reopens(pool):
    _, _, channel = await make_account_with_channel(pool)
    await _ingest(pool, channel, text_message("m1"))
    await _ingest(pool, channel, text_message("m2", at=T0 + minutes(1)))
    conv = await pool.fetchrow("SELECT id, unread_count FROM conversations")
    assert conv["unread_count"] == 2
    await pool.execute("UPDATE conversations SET status = 'resolved'")
    result = await _ingest(pool, channel, text_message("m3", at=T0 + minutes(2)))
    assert await pool.fetchval("SELECT count(*) FROM conversations") == 1
    assert await pool.fetchval("SELECT status FROM conversations") == "open"
    assert result.events[0].event == "conversation.updated"
    assert result.events[0].data["status"] == "open"
    other = await _ingest(pool, channel, text_message("m4", contact="4917000000000"))
    assert other.events[0].event == "conversation.created"
    assert await pool.fetchval("SELECT count(*) FROM conversations") == 2


async def test_a_contact_known_by_an_alias_is_not_duplicated(pool):
    _, _, channel = await make_account_with_channel(pool)
    await _ingest(pool, channel, text_message("m1", contact="4915112345678"))
    newer = text_message("m2").model_copy(update={"contact": ContactRef(
        external_id="DE.123", name="Lena F", phone="+4915112345678", aliases=("4915112345678",))})
    await _ingest(pool, channel, newer)
    assert await pool.fetchval("SELECT count(*) FROM contacts") == 1
    assert await pool.fetchval("SELECT count(*) FROM contact_identities") == 2
    assert await pool.fetchval("SELECT name FROM contacts") == "Lena F"


async def test_group_messages_share_one_conversation_and_record_their_sender(pool):
    _, _, channel = await make_account_with_channel(pool, type_="telegram")
    group = ContactRef(external_id="-100123", name="Support group")
    for i, who in enumerate(["1", "2"]):
        msg = text_message(f"-100123:{i}").model_copy(
            update={"contact": group, "sender": SenderRef(external_id=who, name=f"user {who}")})
        await _ingest(pool, channel, msg)
    assert await pool.fetchval("SELECT count(*) FROM conversations") == 1
    senders = await pool.fetch("SELECT sender FROM messages ORDER BY id")
    assert [s["sender"]["external_id"] for s in senders] == ["1", "2"]
    assert await pool.fetchval("SELECT is_group FROM contacts") is True


async def test_a_payload_that_cannot_be_normalised_becomes_a_dead_letter_and_replay_fixes_it(pool):
    _, _, channel = await make_account_with_channel(pool)
    result = await ingest_payload(pool, channel=channel, payload='{"weird": true}', dedup_key="x",
                                  parsed=ParseError("unknown shape"))
    row = await pool.fetchrow("SELECT status, error, payload FROM inbound_events")
    assert (row["status"], row["error"], row["payload"]) == ("failed", "unknown shape", '{"weird": true}')
    assert result.status == "failed" and await pool.fetchval("SELECT count(*) FROM messages") == 0

    replayed = await replay_failed(pool, lambda ch, payload: ParsedPayload(events=(text_message("fixed"),)))
    assert [r.status for r in replayed] == ["processed"]
    assert await pool.fetchval("SELECT status FROM inbound_events") == "processed"
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    assert await replay_failed(pool, lambda ch, payload: ParsedPayload()) == []


async def test_an_event_for_a_number_the_account_does_not_have_is_dead_lettered_without_losing_the_rest(pool):
    account_id, _, channel = await make_account_with_channel(pool, provider_key="111")
    await make_channel(pool, account_id, provider_key="222")
    good = text_message("ok", channel_key="222")
    bad = text_message("lost", channel_key="999")
    result = await _ingest(pool, channel, good, bad, dedup_key="b")
    assert result.status == "failed" and "999" in (result.error or "")
    rows = await pool.fetch(
        "SELECT m.external_id, c.provider_key FROM messages m JOIN channels c ON c.id = m.channel_id")
    assert [(r["external_id"], r["provider_key"]) for r in rows] == [("ok", "222")]


async def test_another_accounts_channel_is_never_a_routing_target(pool):
    _, _, channel = await make_account_with_channel(pool, provider_key="111")
    _, _, foreign = await make_account_with_channel(pool, name="other", provider_key="333")
    result = await _ingest(pool, channel, text_message("x", channel_key="333"), dedup_key="c")
    assert result.status == "failed"
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    assert foreign.account_id != channel.account_id


async def test_concurrent_deliveries_of_one_message_insert_it_once(pool):
    _, _, channel = await make_account_with_channel(pool)
    await asyncio.gather(*[_ingest(pool, channel, text_message("race"), dedup_key=f"k{i}") for i in range(8)])
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    assert await pool.fetchval("SELECT count(*) FROM conversations") == 1
    assert await pool.fetchval("SELECT count(*) FROM contacts") == 1


async def test_apply_events_logs_each_change_in_the_callers_transaction(pool):
    _, _, channel = await make_account_with_channel(pool)
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        records = await apply_events(conn, channel=channel, events=[text_message("t")])
        await tx.rollback()
    assert [r.seq for r in records] == [1, 2]
    assert await pool.fetchval("SELECT count(*) FROM events") == 0
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_a_contact_who_blocked_us_becomes_reachable_again_when_they_write(pool):
    from schema.events import ContactUnreachable

    _, _, channel = await make_account_with_channel(pool, type_="telegram")
    await _ingest(pool, channel, text_message("c:1", contact="42"))
    blocked = await _ingest(pool, channel, ContactUnreachable(contact=ContactRef(external_id="42"),
                                                              reason="user blocked the bot", occurred_at=T0))
    assert [e.event for e in blocked.events] == ["contact.updated"]
    assert blocked.events[0].data["identities"][0]["unreachable"] is True
    again = await _ingest(pool, channel, ContactUnreachable(contact=ContactRef(external_id="42"),
                                                            reason="user blocked the bot", occurred_at=T0))
    assert again.events == []
    back = await _ingest(pool, channel, text_message("c:2", contact="42", at=T0 + minutes(5)))
    assert "contact.updated" in [e.event for e in back.events]
    assert await pool.fetchval("SELECT unreachable_at FROM contact_identities") is None
