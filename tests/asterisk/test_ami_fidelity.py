"""What a real Asterisk and other projects' captures taught us (issue: fidelity to real peers), end to end:
fake AMI server over TCP → the real runner → rows in PostgreSQL."""

from __future__ import annotations

import pytest

from channels.asterisk.connection import AmiConnection
from inbox.calls import call_events_json
from tests.asterisk.helpers import events_of, eventually, replay
from tests.asterisk.test_runner import Harness, started
from tests.fakes.ami_server import FakeAmiServer, get, trace_events


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
