"""What real WhatsApp bodies need beyond the happy path: one unreadable part among good
ones, system notices that change who a contact is, the phone taking precedence over
the user id for replies, and data worth keeping despite a bad field.

Bodies follow Meta's documented shapes (system messages reference: ``user_changed_number``
and ``user_changed_user_id``, the latter without ``from``) and pywa's peer examples
(tests/fixtures/whatsapp/pywa-updates, MIT).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gateway.outbound_worker import OutboundConfig
from gateway.replay import replay
from tests.fakes.graph_api import running_graph_api
from tests.server import run_server
from tests.whatsapp.fixtures import PEERS, body, with_phone_number_id
from tests.whatsapp.helpers import ACCESS_TOKEN, PHONE_NUMBER_ID, eventually, make_whatsapp_channel, post_signed

FAST = OutboundConfig(concurrency=1, poll_interval=0.02, backoff_base=0.01, backoff_cap=0.05, max_attempts=3)
LENA_WA_ID = "4915112345678"
LENA_OLD_USER_ID = "DE.2384756109283746"
LENA_NEW_USER_ID = "DE.9071534628190375"


def _value(data: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = data["entry"][0]["changes"][0]["value"]
    return value


def user_id_changed(wamid: str = "wamid.HBgLc3lzdGVtLXVpZC0wMQ==") -> dict[str, Any]:
    """Meta's ``user_changed_user_id`` notice: no ``from``, no ``contacts``."""
    return {"id": wamid, "timestamp": "1741952100", "type": "system",
            "system": {"body": f"User Lena Fischer changed from {LENA_OLD_USER_ID} to {LENA_NEW_USER_ID}",
                       "previous_user_id": LENA_OLD_USER_ID, "user_id": LENA_NEW_USER_ID,
                       "type": "user_changed_user_id"}}


async def _identities(pool) -> list[tuple[str, str | None]]:
    rows = await pool.fetch("""SELECT i.external_id, c.phone FROM contact_identities i
                               JOIN contacts c ON c.id = i.contact_id ORDER BY i.id""")
    return [(r["external_id"], r["phone"]) for r in rows]


@pytest.fixture
async def graph():
    async with running_graph_api({PHONE_NUMBER_ID: ACCESS_TOKEN}) as fake:
        yield fake


@pytest.fixture
async def server(db_url, graph, tmp_path):
    async with run_server(db_url, whatsapp_api_base=graph.base_url, gateway_media_dir=tmp_path,
                          extras={"outbound_config": FAST}) as srv:
        yield srv


async def test_a_text_beside_a_user_id_change_without_from_is_stored_and_the_contact_moves(server):
    pool = server.ctx.pool
    channel = await make_whatsapp_channel(pool)
    first = body("text.json")
    data = body("text.json")
    text = _value(data)["messages"][0]
    text["id"] = "wamid.HBgLdGV4dC1iZXNpZGUtc3lzdGVt"
    text["text"]["body"] = "Und wann kommt sie an?"
    _value(data)["messages"].append(user_id_changed())
    async with server.client() as hook:
        assert (await post_signed(hook, channel.channel_id, first)).json()["status"] == "processed"
        answer = (await post_signed(hook, channel.channel_id, data)).json()
    assert answer["status"] == "processed"
    stored = await pool.fetchrow("SELECT text, type FROM messages WHERE external_id = $1", text["id"])
    assert (stored["type"], stored["text"]) == ("text", "Und wann kommt sie an?")
    # The notice is no message; it gave the contact its new user id, and nothing else was created.
    assert await pool.fetchval("SELECT count(*) FROM messages") == 2
    assert await pool.fetchval("SELECT count(*) FROM contacts") == 1
    assert {i for i, _ in await _identities(pool)} == {LENA_OLD_USER_ID, LENA_WA_ID, LENA_NEW_USER_ID}
    assert await pool.fetchval("SELECT count(*) FROM events WHERE name = 'contact.updated'") == 1


async def test_an_unreadable_part_fails_the_payload_without_losing_its_neighbours(server):
    pool = server.ctx.pool
    channel = await make_whatsapp_channel(pool)
    data = body("text.json")
    broken = copy.deepcopy(_value(data)["messages"][0])
    broken["id"] = "wamid.HBgLYnJva2VuLXRpbWVzdGFtcA=="
    broken["timestamp"] = "yesterday"
    _value(data)["messages"].insert(0, broken)
    _value(data)["statuses"] = [{"status": "read", "timestamp": "1741952050", "recipient_id": LENA_WA_ID}]
    async with server.client() as hook:
        answer = (await post_signed(hook, channel.channel_id, data)).json()
    assert answer["status"] == "failed"
    row = await pool.fetchrow("SELECT status, error FROM inbound_events WHERE id = $1", answer["inbound_event_id"])
    assert row["status"] == "failed"
    assert "messages[0].timestamp" in row["error"] and "statuses[0].id" in row["error"]
    good = _value(data)["messages"][1]["id"]
    assert await pool.fetchval("SELECT text FROM messages WHERE external_id = $1", good) == (
        "Hallo, ist meine Bestellung 4711 schon unterwegs?")
    # Replay keeps it a dead letter (the parts are still unreadable) and duplicates nothing.
    (result,) = await replay(pool, ids=[answer["inbound_event_id"]])
    assert result.status == "failed" and result.events == []
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    listed = await _dead_letters(server, channel)
    assert [item["id"] for item in listed] == [answer["inbound_event_id"]]


async def _dead_letters(server, channel) -> list[dict[str, Any]]:
    async with server.client(channel.api_key) as api:
        response = await api.get("/api/v1/inbound", params={"status": "failed"})
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_changed_number_moves_the_contact_and_replies_go_to_the_new_number(server, graph):
    """pywa's ``phone_number_change`` example after a message from the old number."""
    pool = server.ctx.pool
    channel = await make_whatsapp_channel(pool)
    examples = json.loads((PEERS / "system.json").read_text())
    old, new = "972987654321", "972912345678"
    hello = body("text.json")
    value = _value(hello)
    value["contacts"] = [{"profile": {"name": "User A"}, "wa_id": old}]
    value["messages"][0].update({"from": old, "id": "wamid.HBgLZnJvbS1vbGQtbnVtYmVy"})
    del value["messages"][0]["from_user_id"]
    async with server.client() as hook, server.client(channel.api_key) as api:
        await post_signed(hook, channel.channel_id, hello)
        change = with_phone_number_id(examples["phone_number_change"], PHONE_NUMBER_ID)
        assert (await post_signed(hook, channel.channel_id, change)).json()["status"] == "processed"
        assert await _identities(pool) == [(new, f"+{new}")]
        conversation_id = await pool.fetchval("SELECT id FROM conversations")
        sent = await api.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": "Noted!"})
        assert sent.status_code == 202
        await eventually(lambda: _sent(graph, "Noted!"))
    (request,) = graph.sends_with_text("Noted!")
    assert request.body["to"] == new and "recipient" not in request.body
    # The identity hash notice from the same file changes nothing.
    identity = with_phone_number_id(examples["identity_change"], PHONE_NUMBER_ID)
    async with server.client() as hook:
        assert (await post_signed(hook, channel.channel_id, identity)).json()["status"] == "ignored"


async def _sent(graph, text: str) -> bool:
    return bool(graph.delivered_with_text(text))


async def test_a_contact_known_only_by_user_id_is_sent_to_as_recipient(server, graph):
    pool = server.ctx.pool
    channel = await make_whatsapp_channel(pool)
    data = body("text.json")
    value = _value(data)
    # A user whose number is hidden from the business: only the BSUID.
    value["contacts"] = [{"profile": {"name": "Lena Fischer"}, "user_id": LENA_OLD_USER_ID}]
    del value["messages"][0]["from"]
    async with server.client() as hook, server.client(channel.api_key) as api:
        await post_signed(hook, channel.channel_id, data)
        conversation_id = await pool.fetchval("SELECT id FROM conversations")
        await api.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": "Hallo Lena"})
        await eventually(lambda: _sent(graph, "Hallo Lena"))
    (request,) = graph.sends_with_text("Hallo Lena")
    assert request.body["recipient"] == LENA_OLD_USER_ID and "to" not in request.body


async def test_a_location_with_unusable_coordinates_keeps_its_name_and_address(server):
    pool = server.ctx.pool
    channel = await make_whatsapp_channel(pool)
    data = body("location.json")
    location = _value(data)["messages"][0]["location"]
    location.update({"latitude": "52,5200", "longitude": None})
    async with server.client() as hook:
        assert (await post_signed(hook, channel.channel_id, data)).json()["status"] == "processed"
    row = await pool.fetchrow("SELECT type, text, extra FROM messages")
    assert row["type"] == "location"
    assert row["text"] == (location.get("name") or location.get("address"))
    assert row["extra"]["location"]["latitude"] is None and row["extra"]["location"]["longitude"] is None
    assert row["extra"]["location"]["address"] == location.get("address")


async def test_a_message_naming_no_sender_belongs_to_the_single_contact_of_its_change(server):
    pool = server.ctx.pool
    channel = await make_whatsapp_channel(pool)
    data = body("text.json")
    msg = _value(data)["messages"][0]
    del msg["from"], msg["from_user_id"]
    async with server.client() as hook:
        assert (await post_signed(hook, channel.channel_id, data)).json()["status"] == "processed"
    contact = await pool.fetchrow("SELECT c.name, c.phone FROM contacts c")
    assert (contact["name"], contact["phone"]) == ("Lena Fischer", f"+{LENA_WA_ID}")
    assert {i for i, _ in await _identities(pool)} == {LENA_OLD_USER_ID, LENA_WA_ID}
