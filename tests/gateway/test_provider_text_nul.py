"""Provider text PostgreSQL cannot store (NUL, lone surrogates) is replaced, never a lost message, call or 500."""

from __future__ import annotations

import copy
import json

import pytest

from inbox.accounts import create_account
from schema.text import REPLACEMENT, storable, storable_text
from tests.asterisk.helpers import eventually
from tests.asterisk.test_calls_api import FAST, ami_channel
from tests.fakes.ami_server import FakeAmiServer, trace_events
from tests.server import run_server
from tests.telegram.helpers import SECRET, make_telegram_channel, text_update
from tests.whatsapp.fixtures import body
from tests.whatsapp.helpers import make_whatsapp_channel, post_signed

HOSTILE = ["O\x00Neil", "O\ud800Neil", "\x00", "O\udfff\x00Neil\ud83d"]


def test_storable_text_replaces_only_what_postgres_rejects():
    assert storable_text("Grüße 👍 \t\r\n") == "Grüße 👍 \t\r\n"
    assert storable_text("O\x00Neil") == f"O{REPLACEMENT}Neil"
    assert storable_text("a\ud800b") == f"a{REPLACEMENT}b"
    assert storable({"n\x00": ["x\x00", 1, None, {"k": "\udfff"}]}) == {
        f"n{REPLACEMENT}": [f"x{REPLACEMENT}", 1, None, {"k": REPLACEMENT}]}


def ami_with_caller_name(name: str, n: int) -> list:
    out = []
    for event in trace_events("inbound_answered.ami"):
        fields = [(k, v.replace("1741947613.", f"17419476{n:02d}.")) for k, v in event]
        out.append([(k, name if k == "CallerIDName" else v) for k, v in fields])
    return out


async def test_a_nul_in_ami_text_keeps_the_call(db_url):
    async with FakeAmiServer() as pbx, run_server(
        db_url, gateway_lease_interval=0.2, extras={"asterisk_options": FAST}
    ) as srv:
        _, key = await create_account(srv.ctx.pool, "acme")
        async with srv.client(key) as http:
            assert (await http.post("/api/v1/channels", json=ami_channel(pbx))).status_code == 201
            await pbx.wait_until(lambda: pbx.core_show_channels >= 1)
            # A raw NUL on the wire, and AMI's escaped form that the gateway unescapes.
            names = ["O\x00Neil", "O\\0Neil"]
            for n, name in enumerate(names):
                pbx.emit(ami_with_caller_name(name, n))

            async def ended():
                items = (await http.get("/api/v1/calls")).json()["items"]
                done = [c for c in items if c["status"] == "ended"]
                return done if len(done) == len(names) else None

            calls = await eventually(ended, within=30)
            assert len({c["external_id"] for c in calls}) == len(names)
            assert [c["caller_name"] for c in calls] == [f"O{REPLACEMENT}Neil"] * len(names)
            assert all(c["disposition"] == "answered" and c["agent"] == "1001" for c in calls)


@pytest.fixture
async def server(db_url):
    async with run_server(db_url, gateway_workers=False) as srv:
        yield srv


@pytest.mark.parametrize("text", HOSTILE)
async def test_a_whatsapp_message_with_nul_or_a_lone_surrogate_is_stored(server, text):
    channel = await make_whatsapp_channel(server.ctx.pool)
    data = copy.deepcopy(body("text.json"))
    value = data["entry"][0]["changes"][0]["value"]
    value["messages"][0]["text"]["body"] = text
    value["contacts"][0]["profile"]["name"] = text
    async with server.client() as http:
        r = await post_signed(http, channel.channel_id, data)
    assert r.status_code == 200, r.text
    row = await server.ctx.pool.fetchrow("SELECT text FROM messages WHERE external_id = $1",
                                         value["messages"][0]["id"])
    assert row is not None and row["text"] == storable_text(text)
    assert await server.ctx.pool.fetchval("SELECT count(*) FROM inbound_events WHERE status = 'processed'") == 1


@pytest.mark.parametrize("text", HOSTILE)
async def test_a_telegram_message_with_nul_or_a_lone_surrogate_is_stored(server, text):
    channel = await make_telegram_channel(server.ctx.pool)
    update = text_update(1001, 4242, 7, text=text)
    update["message"]["from"]["first_name"] = text
    async with server.client() as http:
        r = await http.post(f"/webhooks/telegram/{channel.id}", content=json.dumps(update),
                            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    row = await server.ctx.pool.fetchrow("SELECT text FROM messages WHERE external_id LIKE '%7'")
    assert row is not None and row["text"] == storable_text(text)
