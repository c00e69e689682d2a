"""The whole service: fake PBX over TCP → channel supervisor → runner → PostgreSQL → REST and /ws."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
import websockets

from gateway.asterisk_runtime import AsteriskOptions
from inbox.accounts import create_account
from tests.asterisk.helpers import eventually
from tests.fakes.ami_server import FakeAmiServer, trace_events
from tests.server import run_server

FAST = AsteriskOptions(connect_timeout=2, action_timeout=2, ping_interval=0.5, ping_timeout=1, backoff_base=0.05,
                       backoff_cap=0.5, stable_after=30, originate_poll=0.1, originate_max_age=30)


def serve(db_url):
    return run_server(db_url, gateway_lease_interval=0.2, extras={"asterisk_options": FAST})


def ami_channel(pbx: FakeAmiServer, secret: str = "s3cret") -> dict:
    return {"type": "asterisk", "name": "PBX", "secrets": {"secret": secret},
            "config": {"host": "127.0.0.1", "port": pbx.port, "username": "gateway",
                       "inbound_contexts": ["from-carrier"], "agent_pattern": r"PJSIP/1\d{3}"}}


@pytest.fixture
async def pbx():
    async with FakeAmiServer() as server:
        yield server


async def receive_until(ws, name: str, seen: list[dict]) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame.get("type") == "event":
            seen.append(frame)
            if frame["event"] == name:
                return frame


async def test_calls_reach_postgres_rest_and_a_websocket_subscriber(db_url, pbx):
    async with serve(db_url) as srv:
        _, key = await create_account(srv.ctx.pool, "acme")
        async with srv.client(key) as http:
            created = await http.post("/api/v1/channels", json=ami_channel(pbx))
            assert created.status_code == 201, created.text
            await pbx.wait_until(lambda: pbx.core_show_channels >= 1)
            async with websockets.connect(f"{srv.ws_url}/ws?token={key}") as ws:
                await ws.send(json.dumps({"type": "subscribe", "topics": ["calls"], "after": None}))
                assert json.loads(await ws.recv())["type"] == "subscribed"
                pbx.emit(trace_events("blind_transfer.ami"))
                seen: list[dict] = []
                ended = await receive_until(ws, "call.ended", seen)
            assert seen[0]["event"] == "call.created"
            assert {f["event"] for f in seen} <= {"call.created", "call.updated", "call.ended"}
            assert ended["data"]["agent"] == "1002" and ended["data"]["disposition"] == "answered"
            listed = (await http.get("/api/v1/calls")).json()
            assert [c["external_id"] for c in listed["items"]] == ["1741949100.300"]
            assert listed["next_cursor"] is None
            one = (await http.get(f"/api/v1/calls/{ended['data']['id']}")).json()
            types = [e["type"] for e in one["events"]]
            assert types.count("transfer") == 1 and types[-1] == "hangup"
            transfer = next(e for e in one["events"] if e["type"] == "transfer")
            assert transfer["data"]["from_agent"] == "1001" and transfer["data"]["to_agent"] == "1002"
            timeline = (await http.get(f"/api/v1/conversations/{one['conversation_id']}/timeline")).json()
            assert [i["kind"] for i in timeline["items"]] == ["call"]


async def test_click_to_call_over_http_rings_the_agent_once_and_the_call_follows(db_url, pbx):
    async with serve(db_url) as srv:
        _, key = await create_account(srv.ctx.pool, "acme")
        async with srv.client(key) as http:
            channel_id = (await http.post("/api/v1/channels", json=ami_channel(pbx))).json()["id"]
            await pbx.wait_until(lambda: pbx.core_show_channels >= 1)
            r = await http.post("/api/v1/calls", json={"channel_id": channel_id, "agent": "1001",
                                                       "to_number": "+1 (555) 123-4567"})
            assert r.status_code == 202, r.text
            call = r.json()
            assert (call["direction"], call["status"], call["to_number"]) == ("outbound", "ringing", "+15551234567")
            assert call["conversation_id"] is not None

            async def ended():
                body = (await http.get(f"/api/v1/calls/{call['id']}")).json()
                return body if body["status"] == "ended" else None

            done = await eventually(ended)
            assert (done["disposition"], done["agent"]) == ("answered", "1001")
            assert len(pbx.originates) == 1
            assert (await http.get("/api/v1/calls", params={"direction": "outbound"})).json()["items"][0]["id"] == \
                call["id"]


async def test_click_to_call_refuses_what_it_cannot_place(db_url, pbx):
    async with serve(db_url) as srv:
        _, key = await create_account(srv.ctx.pool, "acme")
        _, other_key = await create_account(srv.ctx.pool, "other")
        async with srv.client(key) as http, srv.client(other_key) as other:
            channel_id = (await http.post("/api/v1/channels", json=ami_channel(pbx))).json()["id"]
            wa = await http.post("/api/v1/channels", json={
                "type": "whatsapp", "name": "wa", "config": {"phone_number_id": "1065403522"},
                "secrets": {"access_token": "t", "app_secret": "s", "verify_token": "v"}})
            good = {"channel_id": channel_id, "agent": "1001", "to_number": "+15551234567"}
            cases = [
                (other.post("/api/v1/calls", json=good), 404),
                (http.post("/api/v1/calls", json={**good, "channel_id": 999999}), 404),
                (http.post("/api/v1/calls", json={**good, "channel_id": wa.json()["id"]}), 422),
                (http.post("/api/v1/calls", json={**good, "agent": "2001"}), 422),
                (http.post("/api/v1/calls", json={**good, "to_number": "call me"}), 422),
                (http.post("/api/v1/calls", content=b"{not json"), 400),
                (http.post("/api/v1/calls", json=[good]), 422),
                (http.get("/api/v1/calls/999999"), 404),
                (http.get("/api/v1/calls/abc"), 404),
                (http.get("/api/v1/calls", params={"status": "lost"}), 400),
                (http.get("/api/v1/calls", params={"cursor": "garbage"}), 400),
            ]
            for request, status in cases:
                r = await request
                assert r.status_code == status, r.text
                assert set(r.json()["error"]) == {"code", "message"}
            assert pbx.originates == []
            assert (await http.get("/api/v1/calls")).json() == {"items": [], "next_cursor": None}


async def test_a_channel_with_a_wrong_ami_secret_is_refused_at_creation(db_url, pbx):
    async with serve(db_url) as srv:
        _, key = await create_account(srv.ctx.pool, "acme")
        async with srv.client(key) as http:
            r = await http.post("/api/v1/channels", json=ami_channel(pbx, secret="wrong"))
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_credentials"
        assert await srv.ctx.pool.fetchval("SELECT count(*) FROM channels") == 0


async def test_two_gateway_processes_share_one_pbx_and_apply_each_event_once(db_url, pbx):
    stacks = {"a": contextlib.AsyncExitStack(), "b": contextlib.AsyncExitStack()}
    try:
        nodes = {name: await stack.enter_async_context(serve(db_url)) for name, stack in stacks.items()}
        pool = nodes["a"].ctx.pool
        _, key = await create_account(pool, "acme")
        async with nodes["a"].client(key) as http:
            created = await http.post("/api/v1/channels", json=ami_channel(pbx))
            assert created.status_code == 201
        checks = pbx.login_attempts  # the setup hook tried the credentials
        nodes["b"].ctx.extras["wake_supervisor"]()
        await pbx.wait_until(lambda: pbx.core_show_channels >= 1)
        await asyncio.sleep(0.6)  # several lease rounds of both nodes
        assert pbx.logged_in == 1 and pbx.login_attempts == checks + 1
        state = await pool.fetchval("SELECT state FROM channels WHERE id = $1", created.json()["id"])
        holder = next(n for n, srv in nodes.items() if srv.ctx.node_id == state["ami"]["node"])
        pbx.emit(trace_events("inbound_answered.ami"))
        await eventually(lambda: pool.fetchval("SELECT count(*) FROM calls WHERE status = 'ended'"))
        assert await pool.fetchval("SELECT count(*) FROM events WHERE name = 'call.created'") == 1
        assert await pool.fetchval("SELECT count(*) FROM events WHERE name = 'call.ended'") == 1

        # The holder goes away: the other takes the channel over and carries on, once.
        await stacks.pop(holder).aclose()
        (standby,) = nodes.keys() - {holder}
        pool = nodes[standby].ctx.pool
        await pbx.wait_until(lambda: pbx.logged_in == 1 and pbx.core_show_channels >= 2)
        state = await pool.fetchval("SELECT state FROM channels WHERE id = $1", created.json()["id"])
        assert state["ami"]["node"] == nodes[standby].ctx.node_id
        pbx.emit(trace_events("recorded_call.ami"))
        await eventually(lambda: pool.fetchval("SELECT count(*) = 2 FROM calls WHERE status = 'ended'"))
        assert await pool.fetchval("SELECT count(*) FROM calls") == 2
        assert await pool.fetchval("SELECT count(*) FROM events WHERE name = 'call.created'") == 2
        duplicates = await pool.fetch(
            "SELECT call_id, dedup_key FROM call_events GROUP BY 1, 2 HAVING count(*) > 1")
        assert duplicates == []
    finally:
        for stack in stacks.values():
            await stack.aclose()


async def test_click_to_call_answers_503_while_the_ami_connection_is_down(db_url):
    async with serve(db_url) as srv, FakeAmiServer() as pbx:
        _, key = await create_account(srv.ctx.pool, "acme")
        async with srv.client(key) as http:
            channel_id = (await http.post("/api/v1/channels", json=ami_channel(pbx))).json()["id"]
            await pbx.wait_until(lambda: pbx.core_show_channels >= 1)
            pbx.secret = "rotated"  # the PBX changed the password: every new login is refused
            pbx.drop()

            async def refused():
                state = await srv.ctx.pool.fetchval("SELECT state FROM channels WHERE id = $1", channel_id)
                return state["ami"]["status"] == "auth_failed"

            await eventually(refused)
            r = await http.post("/api/v1/calls", json={"channel_id": channel_id, "agent": "1001",
                                                       "to_number": "+15551234567"})
            assert r.status_code == 503 and r.json()["error"]["code"] == "asterisk_unavailable"
            assert "auth_failed" in r.json()["error"]["message"]
            assert await srv.ctx.pool.fetchval("SELECT count(*) FROM calls") == 0
