"""Hand-built event sequences for what the traces do not show: click-to-call, internal calls,
attended transfers, Linkedid rewrites, hold, timestamps, and reconnect reconciliation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from channels.asterisk.codec import parse_block
from channels.asterisk.tracker import ORIGINATE_ACTION_PREFIX
from schema.calls import CallSnapshot
from schema.enums import CallDirection, CallDisposition, CallStatus
from tests.asterisk.helpers import new_tracker, replay
from tests.fakes.ami_server import Fields, channel, event, hangup_events, originate_events, render, with_state

T0 = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
OID = "gw-5b1c0d6e7f80"


def wire(events: list[Fields]) -> list[dict[str, str]]:
    """Through the real parser, as the connection would deliver them."""
    out = []
    for fields in events:
        parsed = parse_block(render(fields).decode())
        assert parsed is not None
        out.append(parsed)
    return out


def final(snaps: list[CallSnapshot]) -> dict[str, CallSnapshot]:
    return {s.external_id or s.originate_id or "": s for s in snaps}


def bridge_enter(bridge: str, ch: dict[str, str]) -> Fields:
    return event("BridgeEnter", {"BridgeUniqueid": bridge, "BridgeType": "basic"}, ch)


def bridge_leave(bridge: str, ch: dict[str, str]) -> Fields:
    return event("BridgeLeave", {"BridgeUniqueid": bridge, "BridgeType": "basic"}, ch)


def dest(ch: dict[str, str]) -> dict[str, str]:
    return {f"Dest{k}": v for k, v in ch.items()}


def inbound_answered(linkedid: str, caller_uid: str, agent_uid: str, bridge: str, agent: str = "1001"):
    caller = channel("PJSIP/carrier-00000100", caller_uid, linkedid, num="+14155550100", cid_name="ACME",
                     context="from-carrier", exten="15105550100", state="4")
    ag = channel(f"PJSIP/{agent}-00000101", agent_uid, linkedid, num=agent)
    events = [
        event("Newchannel", caller),
        event("Newchannel", ag),
        event("DialBegin", caller, dest(ag), DialString=agent),
        event("DialEnd", caller, dest(with_state(ag, "6")), DialStatus="ANSWER"),
        bridge_enter(bridge, with_state(ag, "6")),
        bridge_enter(bridge, with_state(caller, "6")),
    ]
    return with_state(caller, "6"), with_state(ag, "6"), events


def test_click_to_call_is_outbound_from_the_agent_to_the_number_and_answered_when_the_callee_is_bridged():
    tracker = new_tracker()
    tracker.expect_originate(OID, agent="1001", to_number="+15551234567", at=T0)
    r = replay(wire(originate_events(OID, agent="1001", to_number="+15551234567",
                                     action_id=ORIGINATE_ACTION_PREFIX + OID)), tracker=tracker, start=T0)
    call = r.final()[OID]
    assert call.originate_id == OID and call.external_id == OID  # ChannelId becomes the Linkedid
    assert call.direction == CallDirection.OUTBOUND
    assert (call.from_number, call.to_number, call.agent) == ("1001", "+15551234567", "1001")
    assert call.disposition == CallDisposition.ANSWERED
    types = [e.type for e in call.events]
    assert types[0] == "ringing" and "originate" in types and "answered" in types and types[-1] == "hangup"
    assert [e.data["result"] for e in call.events if e.type == "originate"] == ["success"]
    # The agent picking up their own phone is not the answer; the callee joining the bridge is.
    ringing_until = [s.status for s in r.snapshots]
    assert ringing_until.index(CallStatus.IN_PROGRESS) > 0


def test_click_to_call_the_agent_does_not_pick_up_is_no_answer_and_busy_agent_is_busy():
    for outcome, expected in (("no_answer", CallDisposition.NO_ANSWER), ("busy", CallDisposition.BUSY)):
        tracker = new_tracker()
        tracker.expect_originate(OID, agent="1001", to_number="+15551234567", at=T0)
        events = originate_events(OID, agent="1001", to_number="+15551234567",
                                  action_id=ORIGINATE_ACTION_PREFIX + OID, outcome=outcome)
        r = replay(wire(events), tracker=tracker, start=T0)
        call = r.final()[OID]
        assert call.disposition == expected, outcome
        assert call.status == CallStatus.ENDED
        assert [e.data["result"] for e in call.events if e.type == "originate"] == ["failure"]


def test_a_refused_originate_ends_the_call_as_failed_without_any_channel():
    tracker = new_tracker()
    tracker.expect_originate(OID, agent="1001", to_number="+15551234567", at=T0)
    snaps = tracker.originate_failed(OID, at=T0 + timedelta(seconds=1), message="Extension does not exist.")
    (call,) = snaps
    assert call.status == CallStatus.ENDED
    assert call.disposition == CallDisposition.FAILED
    assert call.hangup_cause == "originate_failed"
    assert call.originate_id == OID
    assert [e.type for e in call.events] == ["originate", "hangup"]


def test_agent_to_agent_call_is_internal_and_answered_by_the_callee():
    a = channel("PJSIP/1001-00000200", "1741960100.1", "1741960100.1", num="1001", exten="1002")
    b = channel("PJSIP/1002-00000201", "1741960100.2", "1741960100.1", num="1002")
    events = [
        event("Newchannel", a),
        event("Newchannel", b),
        event("DialBegin", a, dest(b), DialString="1002"),
        event("DialEnd", a, dest(with_state(b, "6")), DialStatus="ANSWER"),
        bridge_enter("br-int", with_state(a, "6")),
        bridge_enter("br-int", with_state(b, "6")),
        *hangup_events("br-int", [with_state(b, "6"), with_state(a, "6")]),
    ]
    call = replay(wire(events)).final()["1741960100.1"]
    assert call.direction == CallDirection.INTERNAL
    assert (call.from_number, call.to_number, call.agent) == ("1001", "1002", "1002")
    assert call.disposition == CallDisposition.ANSWERED


def test_an_agent_dialling_a_number_from_the_phone_is_outbound():
    a = channel("PJSIP/1001-00000300", "1741960200.1", "1741960200.1", num="1001", exten="0033142685300")
    out = channel("PJSIP/carrier-00000301", "1741960200.2", "1741960200.1", num="0033142685300", context="from-carrier")
    events = [
        event("Newchannel", a),
        event("Newchannel", out),
        event("DialBegin", a, dest(out), DialString="0033142685300@carrier"),
        event("DialEnd", a, dest(with_state(out, "6")), DialStatus="ANSWER"),
        bridge_enter("br-out", with_state(a, "6")),
        bridge_enter("br-out", with_state(out, "6")),
        *hangup_events("br-out", [with_state(out, "6"), with_state(a, "6")]),
    ]
    call = replay(wire(events)).final()["1741960200.1"]
    assert call.direction == CallDirection.OUTBOUND
    assert (call.from_number, call.to_number, call.agent) == ("1001", "+33142685300", "1001")
    assert call.disposition == CallDisposition.ANSWERED


def test_attended_transfer_with_hold_records_the_transfer_and_moves_the_agent():
    caller, a1, events = inbound_answered("1741960300.1", "1741960300.1", "1741960300.2", "br-1")
    target = channel("PJSIP/1002-00000302", "1741960300.3", "1741960300.1", num="1002")
    events += [
        event("Hold", caller, MusicClass="default"),
        bridge_leave("br-1", a1),
        event("Newchannel", target),
        event("DialBegin", a1, dest(target), DialString="1002"),
        event("DialEnd", a1, dest(with_state(target, "6")), DialStatus="ANSWER"),
        bridge_enter("br-2", a1),
        bridge_enter("br-2", with_state(target, "6")),
        event("AttendedTransfer", {f"OrigTransferer{k}": v for k, v in a1.items()},
              {f"SecondTransferer{k}": v for k, v in a1.items()},
              {f"Transferee{k}": v for k, v in caller.items()},
              {f"TransferTarget{k}": v for k, v in with_state(target, "6").items()},
              Result="Success", DestType="Bridge", DestBridgeUniqueid="br-1", IsExternal="No"),
        bridge_leave("br-2", with_state(target, "6")),
        bridge_enter("br-1", with_state(target, "6")),
        event("Unhold", caller),
        bridge_leave("br-2", a1),
        event("Hangup", a1, Cause="16", Cause_txt="Normal Clearing"),
        *hangup_events("br-1", [with_state(target, "6"), caller]),
    ]
    r = replay(wire(events))
    assert list(r.final()) == ["1741960300.1"]
    call = r.final()["1741960300.1"]
    assert call.agent == "1002"
    assert call.disposition == CallDisposition.ANSWERED
    types = [e.type for e in call.events]
    assert types.count("hold") == 1 and types.count("unhold") == 1
    (transfer,) = [e for e in call.events if e.type == "transfer"]
    assert transfer.data == {"kind": "attended", "from_agent": "1001", "to_agent": "1002"}
    # The consultation between the two agents did not count as the caller being answered by 1002 early.
    consult = next(s for s in r.snapshots if any(e.type == "transfer" for e in s.events))
    before = r.snapshots[r.snapshots.index(consult) - 1]
    assert before.agent == "1001"


def test_a_channel_whose_linkedid_is_rewritten_moves_to_that_call():
    caller, a1, events = inbound_answered("1741960400.1", "1741960400.1", "1741960400.2", "br-y")
    # 1001 calls 1002 on a second line: its own call (Linkedid 1741960400.5).
    a2 = channel("PJSIP/1001-00000405", "1741960400.5", "1741960400.5", num="1001", exten="1002")
    t = channel("PJSIP/1002-00000406", "1741960400.6", "1741960400.5", num="1002")
    events += [
        event("Newchannel", a2),
        event("Newchannel", t),
        event("DialBegin", a2, dest(t), DialString="1002"),
        event("DialEnd", a2, dest(with_state(t, "6")), DialStatus="ANSWER"),
        bridge_enter("br-x", with_state(a2, "6")),
        bridge_enter("br-x", with_state(t, "6")),
        # The phone transfers (REFER/Replaces): 1002 joins the caller's bridge and takes its older Linkedid.
        bridge_leave("br-x", with_state(t, "6")),
        bridge_enter("br-y", {**with_state(t, "6"), "Linkedid": "1741960400.1"}),
        bridge_leave("br-y", a1),
        event("Hangup", a1, Cause="16", Cause_txt="Normal Clearing"),
        bridge_leave("br-x", with_state(a2, "6")),
        event("Hangup", with_state(a2, "6"), Cause="16", Cause_txt="Normal Clearing"),
        *hangup_events("br-y", [{**with_state(t, "6"), "Linkedid": "1741960400.1"}, caller]),
    ]
    calls = replay(wire(events)).final()
    assert set(calls) == {"1741960400.1", "1741960400.5"}
    main, consult = calls["1741960400.1"], calls["1741960400.5"]
    assert main.agent == "1002" and main.disposition == CallDisposition.ANSWERED
    assert consult.direction == CallDirection.INTERNAL and consult.status == CallStatus.ENDED


def test_a_ring_group_answered_by_one_agent_is_answered_even_though_the_other_leg_was_cancelled():
    caller = channel("PJSIP/carrier-00000500", "1741960500.1", "1741960500.1", num="+14155550100",
                     context="from-carrier", exten="15105550100", state="4")
    a = channel("PJSIP/1001-00000501", "1741960500.2", "1741960500.1", num="1001")
    b = channel("PJSIP/1002-00000502", "1741960500.3", "1741960500.1", num="1002")
    events = [
        event("Newchannel", caller), event("Newchannel", a), event("Newchannel", b),
        event("DialBegin", caller, dest(a)), event("DialBegin", caller, dest(b)),
        event("DialEnd", caller, dest(b), DialStatus="CANCEL"),
        event("Hangup", b, Cause="26", Cause_txt="Answered elsewhere"),
        event("DialEnd", caller, dest(with_state(a, "6")), DialStatus="ANSWER"),
        bridge_enter("br-g", with_state(a, "6")), bridge_enter("br-g", with_state(caller, "6")),
        *hangup_events("br-g", [with_state(caller, "6"), with_state(a, "6")]),
    ]
    call = replay(wire(events)).final()["1741960500.1"]
    assert call.disposition == CallDisposition.ANSWERED
    assert call.agent == "1001"


def test_a_caller_hanging_up_in_the_ivr_before_any_dial_is_cancelled():
    caller = channel("PJSIP/carrier-00000600", "1741960600.1", "1741960600.1", num="+14155550100",
                     context="from-carrier", exten="15105550100", state="6")
    events = [event("Newchannel", caller), event("HangupRequest", caller),
              event("Hangup", caller, Cause="16", Cause_txt="Normal Clearing")]
    call = replay(wire(events)).final()["1741960600.1"]
    assert call.disposition == CallDisposition.CANCELLED


def test_the_timestamp_header_sets_event_times_when_asterisk_sends_it():
    _, _, events = inbound_answered("1741960700.1", "1741960700.1", "1741960700.2", "br-t")
    stamped = [[*fields, ("Timestamp", f"{1741960700 + i}.250000")] for i, fields in enumerate(events)]
    call = replay(wire(stamped)).final()["1741960700.1"]
    assert call.started_at == datetime.fromtimestamp(1741960700.25, UTC)
    assert call.answered_at == datetime.fromtimestamp(1741960705.25, UTC)


def test_a_call_that_ended_while_disconnected_is_closed_as_unknown_on_resync():
    tracker = new_tracker()
    _, _, events = inbound_answered("1741960800.1", "1741960800.1", "1741960800.2", "br-r")
    replay(wire(events), tracker=tracker, start=T0)
    lost = T0 + timedelta(seconds=30)
    (call,) = tracker.resync([], at=T0 + timedelta(seconds=90), lost_at=lost)
    assert call.status == CallStatus.ENDED
    assert call.hangup_cause == "unknown"
    assert call.ended_at == lost
    assert call.disposition == CallDisposition.ANSWERED
    (reconciled,) = [e for e in call.events if e.type == "reconciled"]
    assert "AMI connection was down" in reconciled.data["reason"]
    assert tracker.live_calls() == []


def test_a_call_still_up_after_a_reconnect_keeps_its_history_and_adds_no_duplicate_events():
    tracker = new_tracker()
    caller, agent, events = inbound_answered("1741960900.1", "1741960900.1", "1741960900.2", "br-k")
    before = replay(wire(events), tracker=tracker, start=T0).final()["1741960900.1"]
    listed = [dict(parse_block(render([("Event", "CoreShowChannel"), *ch.items(), ("Duration", "00:00:40"),
                                        ("BridgeId", "br-k")]).decode()) or {})
              for ch in (caller, agent)]
    after = tracker.resync(listed, at=T0 + timedelta(seconds=40))
    assert after == []  # nothing changed: same call, same agent, same answer
    assert tracker.live_calls()[0].answered_at == before.answered_at


def test_close_missing_ends_open_database_calls_that_asterisk_no_longer_lists():
    tracker = new_tracker()
    _, _, events = inbound_answered("1741961000.1", "1741961000.1", "1741961000.2", "br-m")
    replay(wire(events), tracker=tracker, start=T0)
    live = tracker.live_calls()[0]
    gone = CallSnapshot(external_id="1741950000.9", direction=CallDirection.INBOUND, status=CallStatus.RINGING,
                        started_at=T0)
    lost_originate = CallSnapshot(external_id=None, originate_id="gw-lost", direction=CallDirection.OUTBOUND,
                                  status=CallStatus.RINGING, started_at=T0, agent="1001")
    closed = tracker.close_missing([live, gone, lost_originate], at=T0 + timedelta(seconds=5))
    assert [c.external_id or c.originate_id for c in closed] == ["1741950000.9", "gw-lost"]
    for c in closed:
        assert c.status == CallStatus.ENDED and c.hangup_cause == "unknown"
        assert c.disposition == CallDisposition.FAILED
        assert [e.type for e in c.events] == ["reconciled"]
    assert "not retried" in closed[1].events[0].data["reason"]


def test_an_agent_reached_through_unoptimised_local_channels_answers_the_caller():
    caller = channel("PJSIP/carrier-00000900", "1741961100.1", "1741961100.1", num="+14155550100",
                     context="from-carrier", exten="15105550100", state="6")
    l1 = channel("Local/1001@agents-00000007;1", "1741961100.2", "1741961100.1", num="1001")
    l2 = channel("Local/1001@agents-00000007;2", "1741961100.3", "1741961100.1", num="1001")
    agent = channel("PJSIP/1001-00000901", "1741961100.4", "1741961100.1", num="1001")
    events = [
        event("Newchannel", caller), event("Newchannel", l1), event("Newchannel", l2),
        event("DialBegin", caller, dest(l1)), event("Newchannel", agent), event("DialBegin", l2, dest(agent)),
        event("DialEnd", l2, dest(with_state(agent, "6")), DialStatus="ANSWER"),
        event("DialEnd", caller, dest(with_state(l1, "6")), DialStatus="ANSWER"),
        bridge_enter("br-q1", caller), bridge_enter("br-q1", with_state(l1, "6")),
        bridge_enter("br-q2", with_state(l2, "6")),
    ]
    before_agent = replay(wire(events)).final()["1741961100.1"]
    assert before_agent.answered_at is None  # a Local channel is not an agent
    events.append(bridge_enter("br-q2", with_state(agent, "6")))
    call = replay(wire(events)).final()["1741961100.1"]
    assert call.agent == "1001" and call.status == CallStatus.IN_PROGRESS


def test_an_inbound_context_wins_over_a_channel_name_that_looks_like_an_agent():
    trunk = channel("PJSIP/1999-00000a00", "1741961200.1", "1741961200.1", num="+14155550100",
                    context="from-carrier", exten="15105550100", state="4")
    call = replay(wire([event("Newchannel", trunk)])).final()["1741961200.1"]
    assert call.direction == CallDirection.INBOUND and call.from_number == "+14155550100"
