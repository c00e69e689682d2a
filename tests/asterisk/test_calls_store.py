"""Applying tracker snapshots to PostgreSQL through the real ingest path (apply_events)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from channels.asterisk.tracker import ORIGINATE_ACTION_PREFIX
from inbox.calls import call_events_json, call_json, list_calls, open_calls
from inbox.ingest import apply_events
from inbox.originates import claim_next, request_click_to_call
from schema.events import CallChange
from tests.asterisk.helpers import Milestone, events_of, new_tracker, replay, utc
from tests.asterisk.test_tracker_scenarios import wire
from tests.fakes.ami_server import originate_events
from tests.inbox.helpers import make_account_with_channel

CONFIG = {"host": "127.0.0.1", "port": 5038, "username": "gateway", "inbound_contexts": ["from-carrier"]}


async def setup(pool):
    account_id, _, channel = await make_account_with_channel(pool, type_="asterisk", provider_key="x:1:y", **CONFIG)
    return account_id, channel


async def apply(pool, channel, snapshots):
    async with pool.acquire() as conn, conn.transaction():
        return await apply_events(conn, channel=channel, events=[CallChange(call=s) for s in snapshots])


async def test_a_trace_lands_as_one_call_with_its_events_attached_to_the_callers_conversation(pool):
    account_id, channel = await setup(pool)
    r = replay(events_of("inbound_answered.ami"), [
        Milestone("Newchannel", 0, utc("2025-03-14 10:20:13")),
        Milestone("BridgeEnter", 1, utc("2025-03-14 10:20:21")),
        Milestone("HangupRequest", 0, utc("2025-03-14 10:24:02")),
    ])
    records = await apply(pool, channel, r.snapshots)
    names = [rec.event for rec in records]
    assert names.count("call.created") == 1 and names.count("call.ended") == 1
    assert "conversation.created" in names
    (call_id,) = [r["id"] for r in await pool.fetch("SELECT id FROM calls")]
    call = await call_json(pool, account_id, call_id)
    assert call["external_id"] == "1741947613.212"
    assert (call["direction"], call["status"], call["disposition"]) == ("inbound", "ended", "answered")
    assert (call["agent"], call["duration"], call["billsec"]) == ("1001", 229, 221)
    assert call["recording"] is None
    assert call["answered_at"] == "2025-03-14T10:20:21Z"
    conv = await pool.fetchrow("SELECT c.id, ct.name, ct.phone FROM conversations c JOIN contacts ct"
                               " ON ct.id = c.contact_id")
    assert call["conversation_id"] == conv["id"]
    assert (conv["name"], conv["phone"]) == ("JANE ROE", "+14155550123")
    identity = await pool.fetchval("SELECT external_id FROM contact_identities WHERE channel_type = 'asterisk'")
    assert identity == "+14155550123"
    events = await call_events_json(pool, account_id, call_id)
    assert [e["type"] for e in events] == ["ringing", "dial_end", "answered", "hangup"]
    # The event log carries the whole call after each change.
    ended = next(rec for rec in records if rec.event == "call.ended")
    assert ended.data["status"] == "ended" and ended.conversation_id == conv["id"]


async def test_applying_the_same_snapshots_again_changes_nothing(pool):
    _, channel = await setup(pool)
    r = replay(events_of("blind_transfer.ami"))
    first = await apply(pool, channel, r.snapshots)
    again = await apply(pool, channel, r.snapshots)
    assert first and again == []
    assert await pool.fetchval("SELECT count(*) FROM calls") == 1
    assert await pool.fetchval("SELECT count(*) FROM call_events") == len(r.snapshots[-1].events)


async def test_a_recording_becomes_a_pending_media_file_released_when_the_call_ends(pool):
    account_id, channel = await setup(pool)
    r = replay(events_of("recorded_call.ami"))
    during = [s for s in r.snapshots if s.recording_path and s.status != "ended"]
    await apply(pool, channel, during)
    media = await pool.fetchrow("SELECT *, next_attempt_at = 'infinity' AS held FROM media_files")
    assert media["status"] == "pending" and media["held"]  # MixMonitor is still writing it
    await apply(pool, channel, r.snapshots)
    media = await pool.fetchrow("SELECT *, next_attempt_at <= now() AS due FROM media_files")
    assert media["due"]
    assert media["source_url"].endswith("in-15105550100-14155550177-1741950200.400.wav")
    assert (media["mime_type"], media["name"]) == ("audio/wav", "in-15105550100-14155550177-1741950200.400.wav")
    call_id = await pool.fetchval("SELECT id FROM calls")
    call = await call_json(pool, account_id, call_id)
    assert call["recording"]["id"] == media["id"] and call["recording"]["status"] == "pending"
    assert call["caller_name"] == "Dr. K. O'Neil"
    assert await pool.fetchval("SELECT count(*) FROM media_files") == 1


async def test_a_click_to_call_row_is_updated_by_the_events_that_follow_not_duplicated(pool):
    account_id, channel = await setup(pool)
    at = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
    async with pool.acquire() as conn, conn.transaction():
        call_id, events = await request_click_to_call(conn, channel=channel, agent="1001",
                                                      to_number="+15551234567", at=at)
    assert [e.name for e in events] == ["conversation.created", "call.created"]
    request = await claim_next(pool, channel.id, "node-a", max_age=60)
    assert request is not None and request.call_id == call_id
    assert await claim_next(pool, channel.id, "node-b", max_age=60) is None  # taken once
    tracker = new_tracker()
    tracker.expect_originate(request.originate_id, agent="1001", to_number="+15551234567", at=at)
    r = replay(wire(originate_events(request.originate_id, agent="1001", to_number="+15551234567",
                                     action_id=ORIGINATE_ACTION_PREFIX + request.originate_id)),
               tracker=tracker, start=at + timedelta(seconds=1))
    records = await apply(pool, channel, r.snapshots)
    assert "call.created" not in [rec.event for rec in records]
    assert await pool.fetchval("SELECT count(*) FROM calls") == 1
    call = await call_json(pool, account_id, call_id)
    assert call["external_id"] == request.originate_id == call["originate_id"]
    assert (call["direction"], call["status"], call["disposition"], call["agent"]) == (
        "outbound", "ended", "answered", "1001")
    assert call["started_at"] == "2025-03-14T12:00:00Z"  # the click, not the first AMI event
    types = [e["type"] for e in await call_events_json(pool, account_id, call_id)]
    assert types[0] == "originate" and "answered" in types and types[-1] == "hangup"
    # The contact is the dialled number; the call sits in that conversation.
    assert await pool.fetchval("SELECT external_id FROM contact_identities") == "+15551234567"


async def test_an_ended_call_never_goes_back_to_ringing_and_keeps_its_first_answer(pool):
    account_id, channel = await setup(pool)
    r = replay(events_of("inbound_answered.ami"), [Milestone("BridgeEnter", 1, utc("2025-03-14 10:20:21"))])
    await apply(pool, channel, r.snapshots)
    stale = r.snapshots[0]  # ringing, from the start of the call
    later_rebuild = r.snapshots[-1].model_copy(update={"answered_at": utc("2025-03-14 10:20:00")})
    assert await apply(pool, channel, [stale]) == []
    await apply(pool, channel, [later_rebuild])
    call = await call_json(pool, account_id, await pool.fetchval("SELECT id FROM calls"))
    assert call["status"] == "ended"
    assert call["answered_at"] == "2025-03-14T10:20:21Z"


async def test_open_calls_lists_what_reconciliation_must_check_and_close_missing_ends_them(pool):
    account_id, channel = await setup(pool)
    r = replay(events_of("inbound_answered.ami")[:17])  # up to the bridge: in progress
    await apply(pool, channel, r.snapshots)
    (open_call,) = await open_calls(pool, channel.id)
    assert open_call.external_id == "1741947613.212" and open_call.status == "in_progress"
    closed = new_tracker().close_missing([open_call], at=utc("2025-03-14 10:30:00"),
                                         lost_at=utc("2025-03-14 10:25:00"))
    records = await apply(pool, channel, closed)
    assert [rec.event for rec in records] == ["call.ended"]
    call = await call_json(pool, account_id, await pool.fetchval("SELECT id FROM calls"))
    assert (call["status"], call["hangup_cause"], call["disposition"]) == ("ended", "unknown", "answered")
    assert call["ended_at"] == "2025-03-14T10:25:00Z"
    assert (await call_events_json(pool, account_id, call["id"]))[-1]["type"] == "reconciled"
    assert await open_calls(pool, channel.id) == []


async def test_calls_list_newest_first_page_by_page_and_only_for_their_account(pool):
    account_id, channel = await setup(pool)
    await apply(pool, channel, replay(events_of("inbound_noanswer.ami")).snapshots)
    page1 = await list_calls(pool, account_id, limit=2)
    assert len(page1) == 3  # limit + 1 tells there is more
    ids = [c["external_id"] for _, c in page1]
    assert ids == ["1741948230.250", "1741948105.240", "1741948020.230"]
    rest = await list_calls(pool, account_id, after=page1[1][0], limit=2)
    assert [c["external_id"] for _, c in rest] == [page1[2][1]["external_id"]]
    other_account, _ = await setup_other(pool)
    assert await list_calls(pool, other_account) == []


async def setup_other(pool):
    from inbox.accounts import create_account

    return await create_account(pool, "other")


async def test_an_internal_call_has_no_contact_and_no_conversation(pool):
    from tests.asterisk.test_tracker_scenarios import channel as ami_channel
    from tests.asterisk.test_tracker_scenarios import dest, event

    account_id, channel = await setup(pool)
    a = ami_channel("PJSIP/1001-00000200", "1741960100.1", "1741960100.1", num="1001", exten="1002")
    b = ami_channel("PJSIP/1002-00000201", "1741960100.2", "1741960100.1", num="1002")
    r = replay(wire([event("Newchannel", a), event("Newchannel", b), event("DialBegin", a, dest(b))]))
    records = await apply(pool, channel, r.snapshots)
    assert [rec.event for rec in records] == ["call.created", "call.updated"]
    call = await call_json(pool, account_id, await pool.fetchval("SELECT id FROM calls"))
    assert (call["direction"], call["conversation_id"], call["contact_id"]) == ("internal", None, None)
    assert await pool.fetchval("SELECT count(*) FROM contacts") == 0


async def test_originate_status_enum_equals_the_sql_check(pool):
    import re

    from inbox.originates import OriginateStatus

    definition = await pool.fetchval(
        """SELECT pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = 'call_originates'::regclass AND contype = 'c'
             AND pg_get_constraintdef(oid) LIKE '%status%'""")
    assert set(re.findall(r"'([a-z_]+)'::text", definition)) == {s.value for s in OriginateStatus}
