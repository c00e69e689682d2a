"""What a real Asterisk and other projects' captures taught us (issue: fidelity to real peers), end to end:
fake AMI server over TCP → the real runner → rows in PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest

from channels.asterisk.codec import iter_messages
from channels.asterisk.connection import AmiConnection
from channels.asterisk.version import REQUIRED, PbxVersion
from gateway.api.channels import connection_json
from gateway.asterisk_runtime import AsteriskOptions
from inbox.accounts import create_account
from inbox.calls import call_events_json
from inbox.channels import get_channel_any_account
from tests.asterisk.helpers import events_of, eventually, new_tracker, replay, utc
from tests.asterisk.test_calls_api import ami_channel, serve
from tests.asterisk.test_runner import Harness, started
from tests.fakes.ami_server import FakeAmiServer, get, parse_raw, trace_events

PANORAMISK = Path(__file__).parent.parent / "fixtures" / "peers" / "panoramisk"


@pytest.fixture
async def pbx():
    async with FakeAmiServer() as server:
        yield server


@pytest.fixture
async def h(db_url, pool, pbx):
    harness = Harness(db_url, pool, pbx)
    yield harness
    await harness.stop()


def run_together(first: list[tuple[str, str]], second: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Two events with the blank line between them lost: one block with two ``Event:`` headers."""
    return [*first, *second]


# --- one malformed block must not drop the session ----------------------------------------------


async def test_a_block_with_two_event_headers_is_skipped_and_the_session_goes_on(pbx):
    conn = AmiConnection(host="127.0.0.1", port=pbx.port, username="gateway", secret="s3cret",
                         connect_timeout=5, action_timeout=5)
    await conn.open()
    try:
        assert (await conn.next_event())["event"] == "FullyBooted"
        events = trace_events("inbound_answered.ami")
        pbx.emit([events[0], run_together(events[1], events[2]), events[3]])
        got = [await conn.next_event(), await conn.next_event()]
        assert [e["uniqueid"] for e in got] == [get(events[0], "Uniqueid"), get(events[3], "Uniqueid")]
        await conn.ping(answer_within=2)  # still the same live session
        assert not conn.closed and conn.skipped == 1
    finally:
        conn.close()


async def test_a_malformed_block_mid_call_keeps_the_session_and_the_live_call(h, caplog):
    await started(h)
    events = trace_events("inbound_answered.ami")
    first, rest = events[:17], events[17:]  # through both BridgeEnter: the call is in progress
    h.server.emit(first)
    await eventually(lambda: h.pool.fetchrow("SELECT 1 FROM calls WHERE status = 'in_progress'"))
    glued = run_together(
        [("Event", "VarSet"), ("Privilege", "dialplan,all"), ("Channel", "PJSIP/1001-0000002a"),
         ("Variable", "BRIDGEPEER"), ("Value", "PJSIP/carrier-0000002b")],
        [("Event", "VarSet"), ("Privilege", "dialplan,all"), ("Variable", "AMI_SECRET_LOOKALIKE"),
         ("Value", "hunter2")],
    )
    h.server.emit([glued, *rest])
    call = await eventually(lambda: h.pool.fetchrow("SELECT * FROM calls WHERE status = 'ended'"))
    assert (call["hangup_cause"], call["disposition"], call["agent"]) == ("normal_clearing", "answered", "1001")
    types = [e["type"] for e in await call_events_json(h.pool, h.account_id, call["id"])]
    assert "reconciled" not in types
    assert (h.server.login_attempts, h.server.core_show_channels) == (1, 1)  # never reconnected
    skipped = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert skipped and "Event" in skipped[0] and "hunter2" not in " ".join(skipped)


# --- attended transfer through a Local channel ----------------------------------------------------

CALLER_CALL = "1764921600.120"


def _transfer_of(snapshots) -> dict:
    call = snapshots.final()[CALLER_CALL]
    (transfer,) = [e for e in call.events if e.type == "transfer"]
    return {"agent": call.agent, **transfer.data}


def test_an_attended_transfer_to_a_local_channel_names_the_agent_behind_it():
    result = replay(events_of("attended_transfer_local.ami"))
    assert _transfer_of(result) == {"agent": "1002", "kind": "attended", "from_agent": "1001", "to_agent": "1002"}
    assert result.final()[CALLER_CALL].disposition == "answered"


def test_an_attended_transfer_without_transfer_target_fields_finds_the_agent_in_the_destination_bridge():
    events = [
        {k: v for k, v in e.items() if not k.startswith("transfertarget")} if e["event"] == "AttendedTransfer" else e
        for e in events_of("attended_transfer_local.ami")
    ]
    assert _transfer_of(replay(events))["to_agent"] == "1002"


def test_a_dtmf_attended_transfer_reported_with_one_transferer_channel_still_finds_the_target():
    # Feature-code transfers (atxfer) report the same channel as both transferers, with an empty second bridge.
    def one_transferer(e: dict[str, str]) -> dict[str, str]:
        if e["event"] != "AttendedTransfer":
            return e
        rest = {k: v for k, v in e.items() if not k.startswith("secondtransferer")}
        orig = len("origtransferer")
        same = {"secondtransferer" + k[orig:]: v for k, v in e.items() if k.startswith("origtransferer")}
        return {**rest, **same, "secondbridgenumchannels": "0"}

    events = [one_transferer(e) for e in events_of("attended_transfer_local.ami")]
    assert _transfer_of(replay(events)) == {"agent": "1002", "kind": "attended", "from_agent": "1001",
                                           "to_agent": "1002"}


def test_an_attended_transfer_to_a_local_channel_never_seen_reads_the_extension_from_its_name():
    # Only the transfer itself is known about the consultation call (events filtered on the PBX side).
    def about_the_caller_and_1001(e: dict[str, str]) -> bool:
        return e.get("linkedid") == CALLER_CALL and not e.get("channel", "").startswith(("Local/", "PJSIP/1002"))

    events = [e for e in events_of("attended_transfer_local.ami")
              if e["event"] == "AttendedTransfer" or about_the_caller_and_1001(e)]
    assert _transfer_of(replay(events))["to_agent"] == "1002"


async def test_an_attended_transfer_through_local_channels_is_stored_with_its_target(h):
    await started(h)
    h.server.emit(trace_events("attended_transfer_local.ami"))
    call = await eventually(lambda: h.pool.fetchrow(
        "SELECT * FROM calls WHERE external_id = $1 AND status = 'ended'", CALLER_CALL))
    assert (call["agent"], call["disposition"], call["hangup_cause"]) == ("1002", "answered", "normal_clearing")
    transfers = [e for e in await call_events_json(h.pool, h.account_id, call["id"]) if e["type"] == "transfer"]
    assert [t["data"] for t in transfers] == [{"kind": "attended", "from_agent": "1001", "to_agent": "1002"}]


# --- Asterisk 11 and older are refused, clearly ---------------------------------------------------


def asterisk11_session() -> tuple[str, str, list[list[tuple[str, str]]]]:
    """panoramisk's real Asterisk 11 capture: (banner, Asterisk version, server-sent events)."""
    banner = (PANORAMISK / "login_ok.yaml").read_text().splitlines()[0]
    version_reply = (PANORAMISK / "command_core_show_version.yaml").read_text()
    version = next(line.split()[1] for line in version_reply.splitlines() if line.startswith("Asterisk "))
    events = [m for m in parse_raw((PANORAMISK / "originate_with_events.yaml").read_text()) if m[0][0] == "Event"]
    return banner, version, events


def test_the_asterisk11_capture_is_what_would_become_ghost_calls():
    banner, version, _ = asterisk11_session()
    assert (banner, version.split("+")[0]) == ("Asterisk Call Manager/1.3", "11.11.0")
    text = (PANORAMISK / "originate_with_events.yaml").read_text()
    names = {m.get("event") for m in iter_messages(text)}
    assert {"Dial", "Bridge"} <= names and "DialBegin" not in names
    assert not any("linkedid" in m for m in iter_messages(text) if m.get("event") == "Newchannel")
    ghosts = replay(m for m in iter_messages(text) if "event" in m).final()
    assert len(ghosts) > 1  # one real call, several "calls": why such a PBX must be refused


@pytest.mark.parametrize(
    ("ami", "asterisk", "refused"),
    [
        ("1.3", None, True),  # Asterisk 11's banner
        ("1.1", "1.8.32.3", True),
        ("2.10.3", "11.11.0+xivo.14.15", True),  # whichever clue says "too old" wins
        (None, "11.25.3", True),
        ("2.0.0", "12.8.2", False),
        ("9.0.0", "20.11.0", False),
        ("11.0.0", "22.1.0", False),
        ("7.0.3", "certified/18.9-cert5", False),
        ("9.0.0", "GIT-master-5f2d1c0", False),  # unreadable: not a reason to refuse
        (None, None, False),
    ],
)
def test_the_pbx_version_decides_whether_calls_can_be_recorded(ami, asterisk, refused):
    reason = PbxVersion(ami=ami, asterisk=asterisk).refusal()
    assert (reason is not None) == refused
    if reason:
        assert reason.startswith(REQUIRED) and (asterisk or ami) in reason


async def test_an_asterisk11_pbx_puts_the_channel_in_failed_and_records_no_call(db_url, pool):
    banner, version, events = asterisk11_session()
    options = AsteriskOptions(connect_timeout=2, action_timeout=2, backoff_base=0.2, backoff_cap=60,
                              originate_poll=0.1)
    async with FakeAmiServer(banner=banner, asterisk_version=version, after_login=events) as old_pbx:
        h = Harness(db_url, pool, old_pbx, options)
        await h.add_channel()
        h.start()
        try:
            state = await eventually(lambda: _ami_state(h, "failed"))
            assert state["error"].startswith("Asterisk 12 or later required")
            connection = connection_json(await get_channel_any_account(pool, h.channel.id))
            assert connection == {"status": "failed", "reason": state["error"]}
            assert "Asterisk 11.11.0" in state["error"] and "AMI 1.3" in state["error"]
            await old_pbx.wait_until(lambda: old_pbx.login_attempts >= 2)
            await asyncio.sleep(1.5)
            # Backing off like any refused connection (delays of at least 0.15, 0.3, 0.6 s), not a hot loop.
            assert old_pbx.login_attempts <= 4
            assert old_pbx.core_show_channels == 0 and old_pbx.originates == []
            assert await pool.fetchval("SELECT count(*) FROM calls") == 0
        finally:
            await h.stop()


async def _ami_state(h: Harness, status: str) -> dict | None:
    state = await h.pool.fetchval("SELECT state FROM channels WHERE id = $1", h.channel.id)
    ami = (state or {}).get("ami") or {}
    return ami if ami.get("status") == status else None


async def test_creating_a_channel_for_an_asterisk11_pbx_is_refused_with_the_reason(db_url):
    banner, version, _ = asterisk11_session()
    async with FakeAmiServer(banner=banner, asterisk_version=version) as old_pbx, serve(db_url) as srv:
        _, key = await create_account(srv.ctx.pool, "acme")
        async with srv.client(key) as http:
            r = await http.post("/api/v1/channels", json=ami_channel(old_pbx))
        assert (r.status_code, r.json()["error"]["code"]) == (422, "unsupported_version")
        assert r.json()["error"]["message"].startswith("Asterisk 12 or later required")
        assert await srv.ctx.pool.fetchval("SELECT count(*) FROM channels") == 0


# --- downtime: what happened while no gateway listened ----------------------------------------------

QUIET = AsteriskOptions(connect_timeout=2, action_timeout=2, ping_interval=0.3, ping_timeout=0.5, backoff_base=0.05,
                        backoff_cap=0.5, stable_after=30, originate_poll=0.1, last_seen_every=0.2)


async def _heartbeat(h: Harness):
    return await h.pool.fetchval("SELECT seen_at FROM channel_heartbeats WHERE channel_id = $1", h.channel.id)


async def test_a_call_that_ended_while_the_gateway_was_down_ends_when_the_pbx_was_last_heard(db_url, pool, pbx):
    h = Harness(db_url, pool, pbx, QUIET)
    await started(h)
    try:
        events = trace_events("inbound_answered.ami")
        h.server.emit(events[:17])  # answered, in progress
        live = await eventually(lambda: h.pool.fetchrow("SELECT * FROM calls WHERE status = 'in_progress'"))
        assert live["hangup_cause"] is None and live["ended_at"] is None
        await eventually(lambda: _heartbeat_after(h, live["answered_at"]))  # Pongs keep it current
        await h.stop()  # the gateway goes down...
        stopped_at = await h.pool.fetchval("SELECT now()")
        heard_last = await _heartbeat(h)
        for fields in events[17:]:
            h.server.track(fields)  # ...the call ends meanwhile...
        restarted_at = await h.pool.fetchval("SELECT now()")
        h.start()  # ...and a new runner (as after a restart) reconciles
        call = await eventually(lambda: h.pool.fetchrow("SELECT * FROM calls WHERE status = 'ended'"))
        assert call["ended_at"] == heard_last and call["ended_at"] <= stopped_at < restarted_at
        assert (call["hangup_cause"], call["disposition"]) == ("unknown", "answered")
        assert call["duration"] == int((heard_last - call["started_at"]).total_seconds() + 0.5)
        events_json = await call_events_json(h.pool, h.account_id, call["id"])
        assert events_json[-1]["type"] == "reconciled"
    finally:
        await h.stop()


async def _heartbeat_after(h: Harness, moment):
    seen = await _heartbeat(h)
    return seen is not None and seen > moment


async def test_heartbeats_are_throttled_not_written_per_event(db_url, pool, pbx):
    options = AsteriskOptions(connect_timeout=2, action_timeout=2, ping_interval=3600, backoff_base=0.05,
                              backoff_cap=0.5, originate_poll=0.1, last_seen_every=3600)
    h = Harness(db_url, pool, pbx, options)
    await started(h)
    try:
        events = trace_events("inbound_answered.ami")
        h.server.emit(events[:1])
        first = await eventually(lambda: _heartbeat(h))
        h.server.emit(events[1:])  # a whole call: dozens of events
        await eventually(lambda: h.pool.fetchrow("SELECT 1 FROM calls WHERE status = 'ended'"))
        assert await _heartbeat(h) == first
    finally:
        await h.stop()


async def test_a_call_answered_while_the_gateway_was_down_takes_the_answer_time_asterisk_recorded(harness_quiet):
    h = harness_quiet
    events = trace_events("reconnect_midcall.ami")
    listed = [f for f in events if get(f, "Event") == "CoreShowChannel"]
    for fields in listed:
        h.server.track(fields)  # up 00:03:12, the agent's channel created when it started ringing
    answered_epoch = time.time() - 185.25  # the agent picked up after about 7 s of ringing
    h.server.cdr_answer["1741951000.501"] = f"{answered_epoch:.6f}"
    await started(h)
    call = await eventually(lambda: h.pool.fetchrow("SELECT * FROM calls WHERE status = 'in_progress'"))
    assert abs(call["answered_at"].timestamp() - answered_epoch) < 1e-3
    assert call["answered_at"] > call["started_at"]  # not the agent channel's creation
    assert call["hangup_cause"] is None
    assert [get(a, "Variable") for a in h.server.actions if get(a, "Action") == "Getvar"] == ["CDR(answer,f)"] * 2


@pytest.fixture
async def harness_quiet(db_url, pool, pbx):
    harness = Harness(db_url, pool, pbx, QUIET)
    yield harness
    await harness.stop()


def test_an_open_call_has_no_hangup_cause_until_it_ends():
    # The consultation call's first leg (1001's second channel) hangs up at the transfer; the call goes on.
    events = events_of("attended_transfer_local.ami")
    cut = next(i for i, e in enumerate(events)
               if e["event"] == "Hangup" and e["channel"] == "PJSIP/1001-0000007a") + 1
    consultation = replay(events[:cut]).final()["1764921612.122"]
    assert consultation.status != "ended" and consultation.hangup_cause is None
    ended = replay(events).final()["1764921612.122"]
    assert ended.status == "ended" and ended.hangup_cause == "normal_clearing"


@pytest.mark.parametrize(
    ("told", "expected_ago"),
    [
        ({"1741951000.500": 190, "1741951000.501": 185}, 185),  # the later of the two: the agent's pickup
        ({"1741951000.500": 300}, 192),  # only an early answer of the caller (an IVR): not before the agent rang
        ({}, 192),  # nothing told: the agent channel's creation, as before
    ],
)
def test_a_rebuilt_answer_is_the_latest_asterisk_recorded_never_before_the_agent_channel(told, expected_ago):
    listed = [e for e in events_of("reconnect_midcall.ami") if e["event"] == "CoreShowChannel"]
    at = utc("2025-03-14T10:30:00")
    answered = {uid: at - timedelta(seconds=ago) for uid, ago in told.items()}
    (call,) = new_tracker().resync(listed, at=at, answered=answered)
    assert call.answered_at == at - timedelta(seconds=expected_ago)
    assert call.agent == "1003" and call.hangup_cause is None
