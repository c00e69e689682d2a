"""The AMI runner against the fake PBX over TCP, with real PostgreSQL (the runner called directly)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest

from gateway.asterisk_runtime import AsteriskOptions, run_channel
from gateway.broker import InProcessBroker
from gateway.config import load_settings
from gateway.context import AppContext
from inbox.calls import call_events_json, call_json
from inbox.channels import get_channel_any_account
from inbox.originates import request_click_to_call
from schema.enums import ChannelType
from tests.asterisk.helpers import eventually
from tests.fakes.ami_server import FakeAmiServer, get, trace_events
from tests.inbox.helpers import make_account_with_channel
from tests.sealed import seal

FAST = AsteriskOptions(connect_timeout=2, action_timeout=2, ping_interval=0.3, ping_timeout=0.5, backoff_base=0.05,
                       backoff_cap=0.5, stable_after=30, originate_poll=0.1, originate_max_age=30)


class Harness:
    def __init__(self, db_url, pool, server: FakeAmiServer, options: AsteriskOptions = FAST):
        self.pool = pool
        self.server = server
        self.published = []
        broker = InProcessBroker()
        broker.add_listener(self.published.append)
        self.ctx = AppContext(settings=load_settings(database_url=db_url), pool=pool, broker=broker)
        self.ctx.extras["asterisk_options"] = options
        self.task: asyncio.Task | None = None
        self.account_id = 0
        self.channel = None

    async def add_channel(self, secret: str = "s3cret", **config):
        config = {"host": "127.0.0.1", "port": self.server.port, "username": "gateway",
                  "inbound_contexts": ["from-carrier"], "agent_pattern": r"PJSIP/1\d{3}", **config}
        self.account_id, _, row = await make_account_with_channel(
            self.pool, type_="asterisk", provider_key=f"127.0.0.1:{self.server.port}:gateway", **config)
        await self.pool.execute("UPDATE channels SET secrets_enc = $2 WHERE id = $1", row.id, seal({"secret": secret}))
        self.channel = await get_channel_any_account(self.pool, row.id)
        return self.channel

    def start(self):
        self.task = asyncio.create_task(run_channel(self.ctx, self.channel))

    async def stop(self):
        if self.task is not None:
            self.task.cancel()
            done, _ = await asyncio.wait({self.task}, timeout=10)
            assert self.task in done and self.task.cancelled(), "the runner did not stop when cancelled"

    async def calls(self):
        return await self.pool.fetch("SELECT * FROM calls ORDER BY id")

    async def call(self, external_id: str):
        return await self.pool.fetchrow("SELECT * FROM calls WHERE external_id = $1", external_id)


@pytest.fixture
async def pbx():
    async with FakeAmiServer() as server:
        yield server


@pytest.fixture
async def harness(db_url, pool, pbx):
    h = Harness(db_url, pool, pbx)
    yield h
    await h.stop()


async def started(h: Harness, **config) -> None:
    await h.add_channel(**config)
    h.start()
    await h.server.wait_until(lambda: h.server.core_show_channels >= 1)


async def test_a_replayed_trace_lands_in_postgres_and_is_published_once(harness):
    h = harness
    await started(h)
    h.server.emit(trace_events("inbound_answered.ami"))
    call = await eventually(lambda: h.pool.fetchrow("SELECT * FROM calls WHERE status = 'ended'"))
    assert (call["external_id"], call["agent"], call["disposition"]) == ("1741947613.212", "1001", "answered")
    names = [e.event for e in h.published]
    assert names.count("call.created") == 1 and names.count("call.ended") == 1
    assert all(e.data["external_id"] == "1741947613.212" for e in h.published if e.event.startswith("call."))
    logged = await h.pool.fetchval("SELECT count(*) FROM events WHERE name LIKE 'call.%'")
    assert logged == len([n for n in names if n.startswith("call.")])
    state = await h.pool.fetchval("SELECT state FROM channels WHERE id = $1", h.channel.id)
    assert state["ami"]["status"] == "connected"


async def test_dropped_mid_call_while_the_call_ends_it_is_reconciled_not_duplicated_not_left_open(harness):
    h = harness
    await started(h)
    events = trace_events("inbound_answered.ami")
    first, rest = events[:17], events[17:]  # through both BridgeEnter: the call is in progress
    h.server.emit(first)
    await eventually(lambda: h.pool.fetchrow("SELECT 1 FROM calls WHERE status = 'in_progress'"))
    h.server.drop()
    for fields in rest:  # the call ends while nobody listens
        h.server.track(fields)
    await h.server.wait_until(lambda: h.server.core_show_channels >= 2)
    call = await eventually(lambda: h.pool.fetchrow("SELECT * FROM calls WHERE status = 'ended'"))
    assert len(await h.calls()) == 1
    assert (call["hangup_cause"], call["disposition"], call["agent"]) == ("unknown", "answered", "1001")
    events = await call_events_json(h.pool, h.account_id, call["id"])
    types = [e["type"] for e in events]
    # The end is placed at the loss of the connection; we learnt it on reconnect.
    assert types.count("answered") == 1 and types[-2:] == ["hangup", "reconciled"]
    assert "AMI connection was down" in events[-1]["data"]["reason"]


async def test_dropped_mid_call_that_goes_on_is_rebuilt_then_ends_normally(harness):
    h = harness
    await started(h)
    events = trace_events("inbound_answered.ami")
    h.server.emit(events[:17])
    await eventually(lambda: h.pool.fetchrow("SELECT 1 FROM calls WHERE status = 'in_progress'"))
    h.server.drop()
    await h.server.wait_until(lambda: h.server.core_show_channels >= 2)
    await h.server.wait_until(lambda: h.server.logged_in == 1)
    h.server.emit(events[17:])
    call = await eventually(lambda: h.pool.fetchrow("SELECT * FROM calls WHERE status = 'ended'"))
    assert len(await h.calls()) == 1
    assert (call["hangup_cause"], call["disposition"], call["agent"]) == ("normal_clearing", "answered", "1001")
    types = [e["type"] for e in await call_events_json(h.pool, h.account_id, call["id"])]
    assert types.count("answered") == 1 and types.count("hangup") == 1
    assert "reconciled" not in types  # known before the drop: nothing to rebuild


async def test_a_call_in_progress_when_the_gateway_starts_is_rebuilt_from_core_show_channels(harness):
    h = harness
    events = trace_events("reconnect_midcall.ami")
    listed = [f for f in events if get(f, "Event").startswith("CoreShowChannel")]
    for fields in listed:
        h.server.track(fields)  # a call up before we connect
    await started(h)
    await eventually(lambda: h.pool.fetchrow("SELECT 1 FROM calls WHERE status = 'in_progress'"))
    h.server.emit([f for f in events if f not in listed])
    call = await eventually(lambda: h.pool.fetchrow("SELECT * FROM calls WHERE status = 'ended'"))
    assert (call["external_id"], call["agent"], call["disposition"]) == ("1741951000.500", "1003", "answered")
    assert call["duration"] >= 192  # it was up 00:03:12 before we saw it


async def test_a_wrong_password_backs_off_instead_of_a_storm(db_url, pool, pbx):
    h = Harness(db_url, pool, pbx, AsteriskOptions(backoff_base=0.2, backoff_cap=60))
    await h.add_channel(secret="not-the-secret")
    h.start()
    try:
        await pbx.wait_until(lambda: pbx.login_attempts >= 4)
        # The PBX reads each Login after the runner slept at least 3/4 of 0.2, 0.4, 0.8 s (jitter only
        # shortens); a tight loop would not wait at all. A lower bound only: a busy machine makes gaps longer.
        gaps = [b - a for a, b in itertools.pairwise(pbx.login_times[:4])]
        assert [g >= 0.75 * 0.2 * 2**i for i, g in enumerate(gaps)] == [True, True, True], gaps
        assert pbx.failed_logins == pbx.login_attempts
        state = await pool.fetchval("SELECT state FROM channels WHERE id = $1", h.channel.id)
        assert state["ami"]["status"] == "auth_failed"
        assert "Authentication failed" in state["ami"]["error"]
    finally:
        await h.stop()


async def test_a_pbx_that_stops_answering_pings_is_dropped_and_reconnected(harness):
    h = harness
    await started(h)
    h.server.answer_pings = False
    await h.server.wait_until(lambda: h.server.login_attempts >= 2)
    h.server.answer_pings = True
    await h.server.wait_until(lambda: h.server.core_show_channels >= 2)
    state = await eventually(lambda: h.pool.fetchval("SELECT state FROM channels WHERE id = $1", h.channel.id))
    assert state["ami"]["status"] in ("connected", "disconnected")


async def _click_to_call(h: Harness, to_number: str = "+15551234567"):
    async with h.pool.acquire() as conn, conn.transaction():
        call_id, _ = await request_click_to_call(conn, channel=h.channel, agent="1001", to_number=to_number,
                                                 at=datetime.now(UTC))
    return call_id


async def test_click_to_call_is_placed_once_and_followed_to_its_end(harness):
    h = harness
    await started(h)
    call_id = await _click_to_call(h)
    await eventually(lambda: h.pool.fetchrow("SELECT 1 FROM calls WHERE id = $1 AND status = 'ended'", call_id))
    (originate,) = h.server.originates
    assert get(originate, "Channel") == "PJSIP/1001" and get(originate, "Exten") == "+15551234567"
    assert get(originate, "Async") == "true"
    call = await call_json(h.pool, h.account_id, call_id)
    assert get(originate, "ChannelId") == call["originate_id"] == call["external_id"]
    assert (call["direction"], call["disposition"], call["agent"]) == ("outbound", "answered", "1001")
    assert len(await h.calls()) == 1
    status = await h.pool.fetchval("SELECT status FROM call_originates WHERE call_id = $1", call_id)
    assert status == "accepted"
    results = [e["data"].get("result") for e in await call_events_json(h.pool, h.account_id, call_id)
               if e["type"] == "originate"]
    assert results == ["requested", "success"]


@pytest.mark.parametrize("mode", ["drop", "drop_after_queued"])
async def test_an_originate_is_placed_once_even_when_the_connection_drops_right_after_sending(harness, mode):
    h = harness
    h.server.originate_mode = mode
    await started(h)
    call_id = await _click_to_call(h)
    await h.server.wait_until(lambda: len(h.server.originates) == 1)
    h.server.originate_mode = "answer"
    # Reconnected and reconciled: Asterisk shows no such call, so it is closed, and never placed again.
    call = await eventually(lambda: h.pool.fetchrow("SELECT * FROM calls WHERE id = $1 AND status = 'ended'",
                                                    call_id))
    await h.server.wait_until(lambda: h.server.core_show_channels >= 2)
    # The queue is taken in order: once a later request was placed, the first had its chance to be placed again.
    await _click_to_call(h, "+15557654321")
    await h.server.wait_until(lambda: len(h.server.originates) == 2)
    assert [get(o, "Exten") for o in h.server.originates] == ["+15551234567", "+15557654321"]
    assert (call["disposition"], call["hangup_cause"]) == ("failed", "unknown")
    events = await call_events_json(h.pool, h.account_id, call_id)
    assert "not retried" in next(e for e in events if e["type"] == "reconciled")["data"]["reason"]
    status = await h.pool.fetchval("SELECT status FROM call_originates WHERE call_id = $1", call_id)
    assert status == ("unknown" if mode == "drop" else "accepted")


async def test_a_refused_originate_ends_the_call_as_failed_with_the_reason(harness):
    h = harness
    h.server.originate_mode = "error"
    await started(h)
    call_id = await _click_to_call(h)
    call = await eventually(lambda: h.pool.fetchrow("SELECT * FROM calls WHERE id = $1 AND status = 'ended'",
                                                    call_id))
    assert (call["disposition"], call["hangup_cause"]) == ("failed", "originate_failed")
    row = await h.pool.fetchrow("SELECT status, error FROM call_originates WHERE call_id = $1", call_id)
    assert (row["status"], row["error"]) == ("rejected", "Extension does not exist.")
    assert len(h.server.originates) == 1
    assert h.channel.type == ChannelType.ASTERISK


async def test_a_click_to_call_nobody_could_place_in_time_expires_instead_of_ringing_late(harness):
    h = harness
    await h.add_channel()
    call_id = await _click_to_call(h)
    await h.pool.execute("UPDATE call_originates SET created_at = now() - interval '5 minutes'")
    h.start()
    call = await eventually(lambda: h.pool.fetchrow("SELECT * FROM calls WHERE id = $1 AND status = 'ended'",
                                                    call_id))
    assert call["disposition"] == "failed"
    assert h.server.originates == []
    assert await h.pool.fetchval("SELECT status FROM call_originates") == "expired"
    events = await call_events_json(h.pool, h.account_id, call_id)
    refusal = next(e for e in events if e["data"].get("result") == "error")
    assert "unavailable for too long" in refusal["data"]["message"]
