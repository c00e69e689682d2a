"""Client mistakes are 4xx with the error shape, never 500; the event log, dead letters and stats."""

from __future__ import annotations

import json

import httpx

from inbox.channels import get_channel_any_account
from inbox.ingest import ingest_payload
from schema.events import ParseError
from tests.api.helpers import inbound


async def test_malformed_json_is_400_and_a_body_over_one_mib_is_413(server, tenants):
    a, _ = tenants
    url = f"/api/v1/conversations/{a.conversation_id}/messages"
    async with server.client(a.admin_key) as http:
        for raw in (b"{not json", b"\xff\xfe", b""):
            r = await http.post(url, content=raw, headers={"Content-Type": "application/json"})
            assert r.status_code == 400, raw
            assert r.json()["error"]["code"] == "malformed_json"
        big = json.dumps({"text": "x" * (1024 * 1024)}).encode()
        r = await http.post(url, content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

        async def chunks():
            for _ in range(20):
                yield b"x" * 65536

        # Without a Content-Length (chunked), the limit holds while streaming.
        r = await http.post("/api/v1/channels", content=chunks())
        assert r.status_code == 413
        r = await http.patch(f"/api/v1/conversations/{a.conversation_id}", content=b"[1,")
        assert r.status_code == 400


async def test_unknown_ids_and_routes_are_404_in_the_error_shape(server, tenants):
    a, _ = tenants
    async with server.client(a.admin_key) as http:
        for path in ("/api/v1/conversations/999999", "/api/v1/conversations/abc", "/api/v1/conversations/-1",
                     f"/api/v1/conversations/{2**64}", "/api/v1/conversations/0/timeline", "/api/v1/messages/42424242",
                     "/api/v1/contacts/777777", "/api/v1/channels/999999", "/api/v1/inbound/5555",
                     "/api/v1/nothing-here", "/api/v1/conversations/1%00"):
            r = await http.get(path)
            assert r.status_code == 404, path
            assert r.json()["error"]["code"] == "not_found", path
        r = await http.put(f"/api/v1/conversations/{a.conversation_id}", json={})
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


async def test_invalid_query_parameters_are_400(server, tenants):
    a, _ = tenants
    async with server.client(a.admin_key) as http:
        for path, params in [
            ("/api/v1/events", {"after": "x"}), ("/api/v1/events", {"after": "-5"}), ("/api/v1/events", {"limit": 999}),
            ("/api/v1/inbound", {"status": "exploded"}), ("/api/v1/stats", {"since": "yesterday"}),
            ("/api/v1/stats", {"since": "2026-01-01T00:00:00"}),
            ("/api/v1/stats", {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
            ("/api/v1/contacts", {"cursor": "W10"}), ("/api/v1/conversations", {"q": "x" * 500}),
            (f"/api/v1/conversations/{a.conversation_id}/timeline", {"order": "sideways"}),
        ]:
            r = await http.get(path, params=params)
            assert r.status_code == 400, (path, params, r.text)


async def test_the_event_log_pages_by_seq_in_the_ws_frame_shape(server, pool, tenants):
    a, _ = tenants
    channel = await get_channel_any_account(pool, a.channel_id)
    for n in range(3):
        await inbound(pool, channel, external_id=f"wamid.ev{n}", contact=f"4916000000{n}")
    async with server.client(a.admin_key) as http:
        everything = (await http.get("/api/v1/events")).json()
        seqs = [e["seq"] for e in everything["items"]]
        assert seqs == list(range(1, len(seqs) + 1)) and everything["latest_seq"] == seqs[-1]
        first = everything["items"][0]
        assert set(first) == {"type", "seq", "event", "account_id", "conversation_id", "data", "ts"}
        assert first["type"] == "event" and first["ts"].endswith("Z")
        after = (await http.get("/api/v1/events", params={"after": 2, "limit": 2})).json()
        assert [e["seq"] for e in after["items"]] == [3, 4]
        rest = (await http.get("/api/v1/events", params={"cursor": after["next_cursor"]})).json()
        assert [e["seq"] for e in rest["items"]] == seqs[4:] and rest["next_cursor"] is None
        assert (await http.get("/api/v1/events", params={"after": seqs[-1]})).json()["items"] == []


async def test_dead_letters_are_listed_with_their_payload_and_error(server, pool, tenants):
    a, _ = tenants
    channel = await get_channel_any_account(pool, a.channel_id)
    await ingest_payload(pool, channel=channel, payload='{"entry": "weird"}', dedup_key="d1",
                         parsed=ParseError("entry is not a list"))
    await ingest_payload(pool, channel=channel, payload="not json at all", dedup_key="d2",
                         parsed=ParseError("not JSON"))
    async with server.client(a.admin_key) as http:
        failed = (await http.get("/api/v1/inbound", params={"status": "failed"})).json()
        everything = (await http.get("/api/v1/inbound")).json()
        one = (await http.get(f"/api/v1/inbound/{failed['items'][0]['id']}")).json()
    items = failed["items"]
    assert [i["payload"] for i in items] == ["not json at all", {"entry": "weird"}]  # newest first
    assert items[1]["error"] and "entry is not a list" in items[1]["error"]
    assert {"id", "channel_id", "status", "error", "received_at", "payload"} <= set(items[0])
    assert all(i["status"] == "failed" for i in items)
    assert len(everything["items"]) == 2
    assert one == items[0]


async def test_stats_count_conversations_messages_calls_and_first_response(server, pool, tenants):
    a, _ = tenants
    async with server.client(a.agent_key) as http:
        await http.post(f"/api/v1/conversations/{a.conversation_id}/messages", json={"text": "Hi!"})
        await pool.execute("UPDATE conversations SET first_inbound_at = now() - interval '90 seconds' WHERE id = $1",
                           a.conversation_id)
        await pool.execute("UPDATE conversations SET first_response_at = now() WHERE id = $1", a.conversation_id)
        await pool.execute(
            """INSERT INTO calls (account_id, channel_id, direction, status, disposition, external_id)
               VALUES ($1, $2, 'inbound', 'ended', 'answered', 'c1'), ($1, $2, 'inbound', 'ended', 'no_answer', 'c2'),
                      ($1, $2, 'inbound', 'ended', 'cancelled', 'c3'), ($1, $2, 'outbound', 'ringing', NULL, 'c4')""",
            a.account_id, a.channel_id,
        )
        stats = (await http.get("/api/v1/stats")).json()
        future = (await http.get("/api/v1/stats", params={"since": "2999-01-01T00:00:00Z"})).json()
    assert stats["open_conversations"] == 1
    assert stats["conversations"] == {"open": 1, "pending": 0, "snoozed": 0, "resolved": 0}
    counts = {(m["channel_id"], m["direction"]): m["count"] for m in stats["messages"]}
    assert counts == {(a.channel_id, "inbound"): 1, (a.channel_id, "outbound"): 1}
    assert stats["calls"]["answered"] == 1 and stats["calls"]["missed"] == 2 and stats["calls"]["total"] == 4
    assert stats["calls"]["by_disposition"]["no_answer"] == 1
    assert 89 <= stats["first_response"]["median_seconds"] <= 91
    assert future["messages"] == [] and future["calls"]["total"] == 0


async def test_health_answers_without_a_key(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/healthz")).status_code == 200


async def test_nul_characters_in_bodies_are_422_not_a_database_error(server, tenants):
    a, _ = tenants
    wa = {"type": "whatsapp", "name": "x", "config": {"phone_number_id": "77"},
          "secrets": {"access_token": "t", "app_secret": "s", "verify_token": "v"}}
    async with server.client(a.admin_key) as http:
        for method, path, body in [
            ("POST", f"/api/v1/conversations/{a.conversation_id}/messages", {"text": "a\u0000b"}),
            ("PATCH", f"/api/v1/conversations/{a.conversation_id}", {"assignee": "a\u0000b"}),
            ("POST", "/api/v1/channels", {**wa, "name": "x\u0000"}),
            ("POST", "/api/v1/channels", {**wa, "config": {"phone_number_id": "77", "note": ["\u0000"]}}),
            ("POST", "/api/v1/channels", {**wa, "config": {"phone_number_id": "77", "k\u0000": 1}}),
            ("PATCH", f"/api/v1/channels/{a.channel_id}", {"secrets": {"access_token": "\u0000"}}),
            ("POST", "/api/v1/keys", {"name": "\u0000"}),
        ]:
            r = await http.request(method, path, json=body)
            assert r.status_code == 422, (path, body, r.text)
            assert "NUL" in r.json()["error"]["message"]
        for number in ("1e400", "NaN", "-Infinity"):
            raw = '{"type": "whatsapp", "name": "x", "config": {"phone_number_id": "77", "n": ' + number + "}}"
            r = await http.post("/api/v1/channels", content=raw, headers={"Content-Type": "application/json"})
            assert r.status_code == 422 and "finite" in r.json()["error"]["message"], r.text
