"""POST /api/v1/conversations/{id}/messages: idempotent queueing, and the app's own worker sending."""

from __future__ import annotations

import asyncio

from gateway.outbound_worker import OutboundConfig
from schema.enums import ChannelType
from schema.outbound import TransientSendError
from tests.api.helpers import ScriptedSender
from tests.server import run_server


async def test_the_same_post_with_one_idempotency_key_makes_one_message_and_one_job(server, pool, tenants):
    a, _ = tenants
    url = f"/api/v1/conversations/{a.conversation_id}/messages"
    async with server.client(a.agent_key) as http:
        first = await http.post(url, json={"text": "On our way!"}, headers={"Idempotency-Key": "req-42"})
        again = await http.post(url, json={"text": "On our way!"}, headers={"Idempotency-Key": "req-42"})
        other = await http.post(url, json={"text": "On our way!"}, headers={"Idempotency-Key": "req-43"})
        reused = await http.post(url, json={"text": "Something else"}, headers={"Idempotency-Key": "req-42"})
    assert first.status_code == 202 and again.status_code == 200 and other.status_code == 202
    assert first.json() == again.json()
    msg = first.json()
    assert (msg["direction"], msg["status"], msg["type"], msg["text"]) == ("outbound", "pending", "text", "On our way!")
    assert msg["author"] == "alpha agent" and msg["conversation_id"] == a.conversation_id
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "idempotency_key_reused"
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE direction = 'outbound'") == 2
    assert await pool.fetchval("SELECT count(*) FROM outbound_jobs WHERE message_id = $1", msg["id"]) == 1
    created = await pool.fetch("SELECT data FROM events WHERE name = 'message.created' AND (data->>'id')::bigint = $1",
                               msg["id"])
    assert len(created) == 1 and created[0]["data"] == msg


async def test_an_idempotency_key_is_scoped_to_the_account(server, pool, tenants):
    a, b = tenants
    async with server.client(a.agent_key) as http_a, server.client(b.agent_key) as http_b:
        ra = await http_a.post(f"/api/v1/conversations/{a.conversation_id}/messages", json={"text": "hi"},
                               headers={"Idempotency-Key": "shared"})
        rb = await http_b.post(f"/api/v1/conversations/{b.conversation_id}/messages", json={"text": "hi"},
                               headers={"Idempotency-Key": "shared"})
    assert ra.status_code == rb.status_code == 202
    assert ra.json()["id"] != rb.json()["id"]


async def test_bad_message_requests(server, pool, tenants):
    a, _ = tenants
    url = f"/api/v1/conversations/{a.conversation_id}/messages"
    async with server.client(a.agent_key) as http:
        assert (await http.post(url, json={"text": ""})).status_code == 422
        assert (await http.post(url, json={"text": "x" * 4097})).status_code == 422
        assert (await http.post(url, json={})).status_code == 422
        assert (await http.post(url, json={"text": "hi", "reply_to_id": 999999})).status_code == 422
        r = await http.post(url, json={"text": "hi"}, headers={"Idempotency-Key": "x" * 300})
        assert r.status_code == 400
        assert (await http.post("/api/v1/conversations/999999/messages", json={"text": "hi"})).status_code == 404
        await pool.execute("UPDATE channels SET type = 'asterisk' WHERE id = $1", a.channel_id)
        r = await http.post(url, json={"text": "hi"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "channel_cannot_send"
    assert await pool.fetchval("SELECT count(*) FROM outbound_jobs") == 0


async def test_the_apps_worker_sends_a_queued_reply_and_retries_transient_failures(db_url, pool, tenants):
    a, _ = tenants
    sender = ScriptedSender([TransientSendError("503", "busy")])
    config = OutboundConfig(concurrency=2, poll_interval=0.02, backoff_base=0.01, backoff_cap=0.05)
    async with run_server(db_url, senders={ChannelType.WHATSAPP: sender}, extras={"outbound_config": config}) as srv:
        published, settled = [], asyncio.Event()

        def listen(event):
            published.append(event)
            if event.event == "message.updated" and event.data["status"] != "pending":
                settled.set()

        srv.ctx.broker.add_listener(listen)
        async with srv.client(a.agent_key) as http:
            first = await http.post(f"/api/v1/conversations/{a.conversation_id}/messages",
                                    json={"text": "Your order shipped", "reply_to_id": a.message_id})
            assert first.status_code == 202
            message_id = first.json()["id"]
            async with asyncio.timeout(20):
                await settled.wait()
            msg = (await http.get(f"/api/v1/messages/{message_id}")).json()
    assert msg["status"] == "sent" and msg["external_id"] == f"wamid.out-{message_id}"
    assert [c.attempt for c in sender.calls] == [1, 2]
    assert sender.calls[0].reply_to_external_id == "wamid.alpha.1"
    assert sender.calls[0].to == "4915100000001"
    assert [e.event for e in published if e.data.get("id") == message_id] == ["message.created", "message.updated"]
