"""Conversations: filters, cursor pagination, triage with events, timeline, contacts."""

from __future__ import annotations

from datetime import timedelta

from inbox.channels import get_channel_any_account
from tests.api.helpers import T0, inbound


async def walk(http, path, limit, **params):
    """Every item of a list, following next_cursor; also the number of pages."""
    items, cursor, pages = [], None, 0
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        r = await http.get(path, params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) >= {"items", "next_cursor"}
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


async def test_pagination_walks_every_conversation_exactly_once_in_activity_order(server, pool, tenants):
    a, _ = tenants
    channel = await get_channel_any_account(pool, a.channel_id)
    for n in range(23):
        # Several share one timestamp: the id breaks the tie.
        at = T0 + timedelta(minutes=n // 3)
        await inbound(pool, channel, external_id=f"wamid.p{n}", contact=f"4917{n:08d}", at=at)
    async with server.client(a.admin_key) as http:
        items, pages = await walk(http, "/api/v1/conversations", 5)
        everything = (await http.get("/api/v1/conversations", params={"limit": 200})).json()
    ids = [c["id"] for c in items]
    assert len(ids) == 24 and len(set(ids)) == 24
    assert pages == 5
    assert ids == [c["id"] for c in everything["items"]] and everything["next_cursor"] is None
    keys = [(c["last_activity_at"], c["id"]) for c in items]
    assert keys == sorted(keys, reverse=True)


async def test_conversation_filters(server, pool, tenants):
    a, _ = tenants
    channel = await get_channel_any_account(pool, a.channel_id)
    other = await inbound(pool, channel, external_id="wamid.f1", contact="4917700000001", name="Zoë 100%_real")
    third = await inbound(pool, channel, external_id="wamid.f2", contact="4917700000002", name="Max",
                          text="Where is parcel 4711?")
    async with server.client(a.admin_key) as http:
        await http.patch(f"/api/v1/conversations/{other}", json={"status": "pending", "assignee": "sam"})
        await http.patch(f"/api/v1/conversations/{third}", json={"status": "resolved"})

        async def ids(**params):
            r = await http.get("/api/v1/conversations", params=params)
            assert r.status_code == 200, r.text
            return sorted(c["id"] for c in r.json()["items"])

        assert await ids(status="open") == [a.conversation_id]
        assert await ids(status="open,pending") == sorted([a.conversation_id, other])
        assert await ids(assignee="sam") == [other]
        assert await ids(channel_id=a.channel_id) == sorted([a.conversation_id, other, third])
        assert await ids(q="zoë") == [other]
        assert await ids(q="100%_") == [other]
        assert await ids(q="%") == [other]  # a literal percent sign, not a wildcard
        assert await ids(q="77000000") == sorted([other, third])  # phone / identity
        assert await ids(q="PARCEL 47") == [third]  # message text
        for bad in ({"status": "closed"}, {"limit": 0}, {"limit": 201}, {"limit": "ten"}, {"channel_id": "x"},
                    {"cursor": "not-a-cursor"}, {"channel_id": str(2**70)}):
            r = await http.get("/api/v1/conversations", params=bad)
            assert r.status_code == 400, (bad, r.text)
            assert r.json()["error"]["code"] in ("invalid_parameter", "invalid_cursor")
        # A cursor of another list is refused too.
        walked = (await http.get("/api/v1/channels", params={"limit": 1})).json()
        assert walked["next_cursor"] is None
        contacts = (await http.get("/api/v1/contacts", params={"limit": 1})).json()
        r = await http.get("/api/v1/conversations", params={"cursor": contacts["next_cursor"]})
        assert r.status_code == 400


async def test_patch_changes_status_and_assignee_and_logs_one_event(server, pool, tenants):
    a, _ = tenants
    published = []
    server.ctx.broker.add_listener(published.append)
    async with server.client(a.agent_key) as http:
        r = await http.patch(f"/api/v1/conversations/{a.conversation_id}",
                             json={"status": "snoozed", "assignee": "kim"})
        assert r.status_code == 200
        assert (r.json()["status"], r.json()["assignee"]) == ("snoozed", "kim")
        same = await http.patch(f"/api/v1/conversations/{a.conversation_id}", json={"status": "snoozed"})
        assert same.status_code == 200
        unassigned = await http.patch(f"/api/v1/conversations/{a.conversation_id}", json={"assignee": None})
        assert unassigned.json()["assignee"] is None and unassigned.json()["status"] == "snoozed"
        for bad in ({"status": "closed"}, {}, {"status": None}, {"unread_count": 3}, {"owner": "x"}):
            r = await http.patch(f"/api/v1/conversations/{a.conversation_id}", json=bad)
            assert r.status_code == 422, (bad, r.text)
    events = await pool.fetch("SELECT name, data FROM events WHERE account_id = $1 AND name = 'conversation.updated' "
                              "ORDER BY seq", a.account_id)
    assert [(e["data"]["status"], e["data"]["assignee"]) for e in events][-2:] == [("snoozed", "kim"),
                                                                                    ("snoozed", None)]
    assert [p.event for p in published] == ["conversation.updated", "conversation.updated"]
    assert published[0].data["assignee"] == "kim"


async def test_reading_a_conversation_resets_its_unread_count(server, pool, tenants):
    a, _ = tenants
    channel = await get_channel_any_account(pool, a.channel_id)
    await inbound(pool, channel, external_id="wamid.alpha.2", contact="4915100000001")
    async with server.client(a.agent_key) as http:
        before = (await http.get(f"/api/v1/conversations/{a.conversation_id}")).json()
        assert before["unread_count"] == 2
        r = await http.post(f"/api/v1/conversations/{a.conversation_id}/read")
        assert r.status_code == 200 and r.json()["unread_count"] == 0
        await inbound(pool, channel, external_id="wamid.alpha.3", contact="4915100000001")
        r = await http.patch(f"/api/v1/conversations/{a.conversation_id}", json={"unread_count": 0})
        assert r.json()["unread_count"] == 0


async def test_reopening_when_the_contact_already_has_an_active_conversation_is_409(server, pool, tenants):
    a, _ = tenants
    async with server.client(a.admin_key) as http:
        await http.patch(f"/api/v1/conversations/{a.conversation_id}", json={"status": "resolved"})
        # A newer conversation with the same contact on the same channel is active.
        await pool.execute(
            "INSERT INTO conversations (account_id, channel_id, contact_id) VALUES ($1, $2, $3)",
            a.account_id, a.channel_id, a.contact_id,
        )
        r = await http.patch(f"/api/v1/conversations/{a.conversation_id}", json={"status": "open"})
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "conflict"


async def test_the_timeline_lists_messages_and_calls_in_time_order(server, pool, tenants):
    a, _ = tenants
    channel = await get_channel_any_account(pool, a.channel_id)
    for n in range(1, 6):
        await inbound(pool, channel, external_id=f"wamid.alpha.t{n}", contact="4915100000001",
                      text=f"message {n}", at=T0 + timedelta(minutes=n))
    async with server.client(a.admin_key) as http:
        items, pages = await walk(http, f"/api/v1/conversations/{a.conversation_id}/timeline", 2)
        newest_first = (await http.get(f"/api/v1/conversations/{a.conversation_id}/timeline",
                                       params={"order": "desc", "limit": 2})).json()
        one = (await http.get(f"/api/v1/messages/{items[1]['item']['id']}")).json()
    assert pages == 3
    assert [i["kind"] for i in items] == ["message"] * 6
    assert [i["item"]["text"] for i in items] == ["hallo", *(f"message {n}" for n in range(1, 6))]
    assert [i["item"]["text"] for i in newest_first["items"]] == ["message 5", "message 4"]
    assert one == items[1]["item"]


async def test_contacts_list_search_and_identities(server, pool, tenants):
    a, _ = tenants
    channel = await get_channel_any_account(pool, a.channel_id)
    await inbound(pool, channel, external_id="wamid.c1", contact="4917711111111", name="Ana Souza")
    async with server.client(a.admin_key) as http:
        found = (await http.get("/api/v1/contacts", params={"q": "souza"})).json()["items"]
        assert [c["name"] for c in found] == ["Ana Souza"]
        one = (await http.get(f"/api/v1/contacts/{found[0]['id']}")).json()
        assert [(i["channel_type"], i["external_id"]) for i in one["identities"]] == [("whatsapp", "4917711111111")]
        items, _ = await walk(http, "/api/v1/contacts", 1)
        assert len(items) == 2


async def test_calls_appear_in_the_timeline_between_messages_by_time(server, pool, tenants):
    a, _ = tenants
    channel = await get_channel_any_account(pool, a.channel_id)
    await inbound(pool, channel, external_id="wamid.alpha.late", contact="4915100000001", text="after the call",
                  at=T0 + timedelta(hours=1))
    call_id = await pool.fetchval(
        """INSERT INTO calls (account_id, channel_id, conversation_id, direction, from_number, status, disposition,
                              agent, external_id, started_at, ended_at, duration, billsec)
           VALUES ($1, $2, $3, 'inbound', '+4915100000001', 'ended', 'answered', '1001', '1741947613.212',
                   $4, $5, 120, 100) RETURNING id""",
        a.account_id, a.channel_id, a.conversation_id, T0 + timedelta(minutes=30), T0 + timedelta(minutes=32),
    )
    async with server.client(a.admin_key) as http:
        items = (await http.get(f"/api/v1/conversations/{a.conversation_id}/timeline")).json()["items"]
    assert [(i["kind"], i["item"]["id"]) for i in items][1] == ("call", call_id)
    assert [i["kind"] for i in items] == ["message", "call", "message"]
    call = items[1]["item"]
    assert (call["direction"], call["disposition"], call["agent"]) == ("inbound", "answered", "1001")
    assert call["billsec"] == 100
