"""Keys belong to one account: no key is 401, another account's objects are 404, lists never mix."""

from __future__ import annotations

from inbox.channels import get_channel_any_account
from inbox.ingest import ingest_payload
from schema.events import ParseError


async def dead_letter(pool, channel_id: int, body: str = '{"broken": true}') -> int:
    channel = await get_channel_any_account(pool, channel_id)
    result = await ingest_payload(pool, channel=channel, payload=body, dedup_key=None,
                                  parsed=ParseError("no entry in payload"))
    return result.inbound_event_id


async def test_requests_without_a_valid_key_are_401(server, tenants):
    a, _ = tenants
    async with server.client() as anon, server.client("igw_not-a-real-key") as forged, \
            server.client(a.admin_key) as ok:
        for path in ("/api/v1/conversations", "/api/v1/channels", "/api/v1/events", f"/api/v1/messages/{a.message_id}"):
            for client in (anon, forged):
                r = await client.get(path)
                assert r.status_code == 401, path
                assert r.json()["error"]["code"] == "unauthorized"
        r = await anon.post(f"/api/v1/conversations/{a.conversation_id}/messages", json={"text": "hi"})
        assert r.status_code == 401
        r = await ok.get("/api/v1/conversations", headers={"Authorization": "Basic Zm9vOmJhcg=="})
        assert r.status_code == 401


async def test_a_revoked_key_is_401(server, tenants):
    a, _ = tenants
    async with server.client(a.admin_key) as admin:
        created = (await admin.post("/api/v1/keys", json={"name": "temp", "role": "agent"})).json()
        async with server.client(created["key"]) as temp:
            assert (await temp.get("/api/v1/conversations")).status_code == 200
            assert (await admin.delete(f"/api/v1/keys/{created['id']}")).status_code == 204
            assert (await temp.get("/api/v1/conversations")).status_code == 401


async def test_a_key_of_account_a_gets_404_for_every_object_of_account_b(server, pool, tenants):
    a, b = tenants
    b_inbound = await dead_letter(pool, b.channel_id)
    b_key = (await pool.fetchval("SELECT id FROM api_keys WHERE account_id = $1 ORDER BY id LIMIT 1", b.account_id))
    requests = [
        ("GET", f"/api/v1/channels/{b.channel_id}", None),
        ("PATCH", f"/api/v1/channels/{b.channel_id}", {"name": "mine now"}),
        ("DELETE", f"/api/v1/channels/{b.channel_id}", None),
        ("GET", f"/api/v1/conversations/{b.conversation_id}", None),
        ("PATCH", f"/api/v1/conversations/{b.conversation_id}", {"status": "resolved"}),
        ("POST", f"/api/v1/conversations/{b.conversation_id}/read", None),
        ("GET", f"/api/v1/conversations/{b.conversation_id}/timeline", None),
        ("POST", f"/api/v1/conversations/{b.conversation_id}/messages", {"text": "hello from A"}),
        ("GET", f"/api/v1/messages/{b.message_id}", None),
        ("GET", f"/api/v1/contacts/{b.contact_id}", None),
        ("GET", f"/api/v1/inbound/{b_inbound}", None),
        ("DELETE", f"/api/v1/keys/{b_key}", None),
    ]
    async with server.client(a.admin_key) as http:
        for method, path, body in requests:
            r = await http.request(method, path, json=body)
            assert r.status_code == 404, (method, path, r.text)
            assert r.json()["error"]["code"] == "not_found"
    # Nothing of B changed.
    assert await pool.fetchval("SELECT name FROM channels WHERE id = $1 AND deleted_at IS NULL", b.channel_id)
    assert await pool.fetchval("SELECT status FROM conversations WHERE id = $1", b.conversation_id) == "open"
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", b.conversation_id) == 1
    assert await pool.fetchval("SELECT revoked_at FROM api_keys WHERE id = $1", b_key) is None


async def test_lists_never_show_another_accounts_data(server, pool, tenants):
    a, b = tenants
    await dead_letter(pool, a.channel_id)
    await dead_letter(pool, b.channel_id)
    async with server.client(a.admin_key) as http:
        async def items(path, **params):
            r = await http.get(path, params=params)
            assert r.status_code == 200, r.text
            return r.json()["items"]

        assert [c["id"] for c in await items("/api/v1/conversations")] == [a.conversation_id]
        assert await items("/api/v1/conversations", channel_id=b.channel_id) == []
        assert await items("/api/v1/conversations", q="beta") == []
        assert [c["id"] for c in await items("/api/v1/channels")] == [a.channel_id]
        assert [c["id"] for c in await items("/api/v1/contacts")] == [a.contact_id]
        assert {e["account_id"] for e in await items("/api/v1/events")} == {a.account_id}
        assert {i["channel_id"] for i in await items("/api/v1/inbound")} == {a.channel_id}
        assert await items("/api/v1/inbound", channel_id=b.channel_id) == []
        keys = await items("/api/v1/keys")
        assert {k["name"] for k in keys} == {"initial admin key", "alpha agent"}
        stats = (await http.get("/api/v1/stats")).json()
        assert [m["channel_id"] for m in stats["messages"]] == [a.channel_id]
        assert stats["open_conversations"] == 1


async def test_an_agent_key_cannot_manage_channels_or_keys(server, pool, tenants):
    a, _ = tenants
    wa = {"type": "whatsapp", "name": "x", "config": {"phone_number_id": "5"},
          "secrets": {"access_token": "t", "app_secret": "s", "verify_token": "v"}}
    async with server.client(a.agent_key) as http:
        for method, path, body in [
            ("POST", "/api/v1/channels", wa),
            ("PATCH", f"/api/v1/channels/{a.channel_id}", {"name": "renamed"}),
            ("DELETE", f"/api/v1/channels/{a.channel_id}", None),
            ("GET", "/api/v1/keys", None),
            ("POST", "/api/v1/keys", {"name": "mine", "role": "admin"}),
        ]:
            r = await http.request(method, path, json=body)
            assert r.status_code == 403, (method, path)
            assert r.json()["error"]["code"] == "forbidden"
    assert await pool.fetchval("SELECT count(*) FROM channels WHERE deleted_at IS NULL") == 2
    assert await pool.fetchval("SELECT count(*) FROM channels WHERE name = 'renamed'") == 0
    assert await pool.fetchval("SELECT count(*) FROM api_keys") == 4


async def test_an_agent_key_can_read_and_triage(server, tenants):
    a, _ = tenants
    async with server.client(a.agent_key) as http:
        assert (await http.get("/api/v1/channels")).status_code == 200
        r = await http.patch(f"/api/v1/conversations/{a.conversation_id}", json={"assignee": "agent-7"})
        assert r.status_code == 200 and r.json()["assignee"] == "agent-7"
