"""Each recorded trace → the calls its README describes (tests/fixtures/ami/README.md).

The traces carry no timestamps (Asterisk without ``timestampevents``), so the
clock is scripted: it jumps to the CDR's times at the matching events, and the
durations we compute must agree with Asterisk's own CDR.
"""

from __future__ import annotations

from schema.enums import CallDirection, CallDisposition, CallStatus
from tests.asterisk.helpers import Milestone, events_of, new_tracker, replay, utc


def test_inbound_answered_call_is_one_call_answered_by_1001_with_cdr_durations():
    r = replay(
        events_of("inbound_answered.ami"),
        [
            Milestone("Newchannel", 0, utc("2025-03-14 10:20:13")),
            Milestone("BridgeEnter", 1, utc("2025-03-14 10:20:21")),
            Milestone("HangupRequest", 0, utc("2025-03-14 10:24:02")),
        ],
    )
    calls = r.final()
    assert list(calls) == ["1741947613.212"]
    call = calls["1741947613.212"]
    assert call.direction == CallDirection.INBOUND
    assert (call.from_number, call.to_number, call.caller_name) == ("+14155550123", "15105550100", "JANE ROE")
    assert call.status == CallStatus.ENDED
    assert call.disposition == CallDisposition.ANSWERED
    assert call.agent == "1001"
    assert call.answered_at == utc("2025-03-14 10:20:21")
    # The CDR of this call says Duration 229, BillableSeconds 221.
    assert (call.duration, call.billsec) == (229, 221)
    assert call.hangup_cause == "normal_clearing"
    assert [e.type for e in call.events] == ["ringing", "dial_end", "answered", "hangup"]


def test_the_interleaved_ping_response_is_not_an_event():
    assert all("event" in m for m in events_of("inbound_answered.ami"))
    r = replay(events_of("inbound_answered.ami"))
    assert len(r.final()) == 1


def test_a_call_is_created_ringing_then_answered_then_ended():
    r = replay(events_of("inbound_answered.ami"))
    statuses = [s.status for s in r.snapshots]
    assert statuses[0] == CallStatus.RINGING
    assert CallStatus.IN_PROGRESS in statuses
    assert statuses[-1] == CallStatus.ENDED
    assert statuses.count(CallStatus.ENDED) == 1


def test_missed_calls_are_no_answer_busy_and_cancelled_never_answered_by_voicemail():
    r = replay(
        events_of("inbound_noanswer.ami"),
        [
            Milestone("Newchannel", 0, utc("2025-03-14 10:27:00")),
            Milestone("Hangup", 1, utc("2025-03-14 10:27:45")),
            Milestone("Newchannel", 2, utc("2025-03-14 10:28:25")),
            Milestone("Hangup", 3, utc("2025-03-14 10:28:31")),
            Milestone("Newchannel", 4, utc("2025-03-14 10:30:30")),
            Milestone("Hangup", 4, utc("2025-03-14 10:30:44")),
        ],
    )
    calls = r.final()
    assert list(calls) == ["1741948020.230", "1741948105.240", "1741948230.250"]
    a, b, c = calls.values()
    assert a.disposition == CallDisposition.NO_ANSWER  # rang out, then VoiceMail took the caller Up
    assert b.disposition == CallDisposition.BUSY
    assert c.disposition == CallDisposition.CANCELLED
    for call in (a, b, c):
        assert call.answered_at is None
        assert call.agent is None
        assert call.billsec == 0
        assert call.status == CallStatus.ENDED
        assert not any(e.type == "answered" for e in call.events)
    assert a.caller_name is None  # "<unknown>"
    assert (b.duration, c.duration) == (6, 14)  # the CDRs of B and C
    assert b.hangup_cause == "user_busy"
    # Voicemail answering never made call A "in progress".
    assert all(s.status != CallStatus.IN_PROGRESS for s in r.snapshots)


def test_blind_transfer_keeps_one_call_and_moves_the_agent_from_1001_to_1002():
    r = replay(
        events_of("blind_transfer.ami"),
        [
            Milestone("Newchannel", 0, utc("2025-03-14 10:45:00")),
            Milestone("BridgeEnter", 1, utc("2025-03-14 10:45:06")),
            Milestone("BlindTransfer", 0, utc("2025-03-14 10:46:01")),
            Milestone("BridgeEnter", 3, utc("2025-03-14 10:46:09")),
            Milestone("HangupRequest", 0, utc("2025-03-14 10:49:37")),
        ],
    )
    calls = r.final()
    assert list(calls) == ["1741949100.300"]
    call = calls["1741949100.300"]
    assert call.agent == "1002"
    assert call.disposition == CallDisposition.ANSWERED
    # billsec runs from the FIRST agent answer (10:45:06) to the end, across the transfer;
    # duration matches the two CDR legs together (61 + 216).
    assert (call.duration, call.billsec) == (277, 271)
    assert call.answered_at == utc("2025-03-14 10:45:06")
    transfer = [e for e in call.events if e.type == "transfer"]
    assert len(transfer) == 1
    assert transfer[0].data == {"kind": "blind", "from_agent": "1001", "to_extension": "1002", "to_agent": "1002"}
    answered = [(e.data["agent"], e.occurred_at) for e in call.events if e.type == "answered"]
    assert answered == [("1001", utc("2025-03-14 10:45:06")), ("1002", utc("2025-03-14 10:46:09"))]
    agents_over_time = [s.agent for s in r.snapshots]
    assert agents_over_time.index("1001") < agents_over_time.index("1002")


def test_recorded_call_captures_the_mixmonitor_file_and_unescapes_the_caller_name():
    r = replay(
        events_of("recorded_call.ami"),
        [
            Milestone("Newchannel", 0, utc("2025-03-14 11:03:20")),
            Milestone("BridgeEnter", 1, utc("2025-03-14 11:03:27")),
            Milestone("HangupRequest", 0, utc("2025-03-14 11:11:54")),
        ],
    )
    call = r.final()["1741950200.400"]
    assert call.caller_name == "Dr. K. O'Neil"
    path = "/var/spool/asterisk/monitor/2025/03/14/in-15105550100-14155550177-1741950200.400.wav"
    assert call.recording_path == path
    assert [e.data for e in call.events if e.type == "recording"] == [{"path": path}]
    assert (call.duration, call.billsec) == (514, 507)
    assert call.agent == "1001"


def test_reconnect_mid_call_rebuilds_the_call_from_core_show_channels():
    reconnected = utc("2025-03-14 10:59:52")
    r = replay(
        events_of("reconnect_midcall.ami"),
        [
            Milestone("CoreShowChannel", 0, reconnected),
            Milestone("Hangup", 1, utc("2025-03-14 11:00:00")),
        ],
    )
    calls = r.final()
    assert list(calls) == ["1741951000.500"]
    call = calls["1741951000.500"]
    assert call.direction == CallDirection.INBOUND
    assert call.from_number == "+16175550142"
    assert call.agent == "1003"
    assert call.disposition == CallDisposition.ANSWERED
    assert call.started_at == utc("2025-03-14 10:56:40")  # listed Duration 00:03:12 before the list
    assert call.status == CallStatus.ENDED
    assert call.duration == 200
    assert [e.type for e in call.events] == ["reconciled", "answered", "hangup"]
    # Rebuilt as in progress first, then ended by the events that follow.
    assert r.snapshots[0].status == CallStatus.IN_PROGRESS


def test_linkedid_and_uniqueid_stay_strings_with_their_trailing_zeros():
    r = replay(events_of("inbound_noanswer.ami"))
    assert "1741948020.230" in r.final()
    assert all(isinstance(s.external_id, str) for s in r.snapshots)


def test_replaying_a_trace_twice_gives_the_same_snapshots_and_event_keys():
    first = replay(events_of("blind_transfer.ami"))
    second = replay(events_of("blind_transfer.ami"))
    assert first.snapshots == second.snapshots
    keys = [e.key for e in first.final()["1741949100.300"].events]
    assert len(keys) == len(set(keys))


def test_events_after_the_end_of_a_call_do_not_reopen_it():
    tracker = new_tracker()
    replay(events_of("inbound_answered.ami"), tracker=tracker)
    again = replay(events_of("inbound_answered.ami")[-3:], tracker=tracker)  # BridgeDestroy, Hangup, Cdr
    assert again.snapshots == []
    assert tracker.live_calls() == []
