"""Agent replies through the REST API, the outbound worker, the WhatsApp sender and a fake Graph API."""

from __future__ import annotations

import pytest

from gateway.media_worker import MediaWorkerConfig
from gateway.outbound_worker import OutboundConfig
from tests.fakes.graph_api import ScriptedError, graph_error, running_graph_api
from tests.server import run_server
from tests.whatsapp.fixtures import raw
from tests.whatsapp.helpers import (
    ACCESS_TOKEN,
    PHONE_NUMBER_ID,
    echo,
    eventually,
    make_whatsapp_channel,
    post_signed,
)

FAST = OutboundConfig(concurrency=2, poll_interval=0.02, backoff_base=0.01, backoff_cap=0.05, max_attempts=5)
LENA_TEXT = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFC1pbi0wMDAxN0I4NkQxRjM0RkNDAA=="


def status(wamid: str, name: str) -> dict:
    return {"object": "whatsapp_business_account", "entry": [{"id": "209876543210987", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550109876", "phone_number_id": PHONE_NUMBER_ID},
                  "statuses": [{"id": wamid, "status": name, "timestamp": "1893456000",
                                "recipient_id": "4915112345678"}]}}]}]}


@pytest.fixture
async def graph():
    async with running_graph_api({PHONE_NUMBER_ID: ACCESS_TOKEN}) as fake:
        yield fake


@pytest.fixture
async def setup(db_url, graph, tmp_path):
    async with run_server(db_url, whatsapp_api_base=graph.base_url, gateway_media_dir=tmp_path,
                          extras={"outbound_config": FAST,
                                  "media_worker_config": MediaWorkerConfig(poll_interval=0.05)}) as srv:
        channel = await make_whatsapp_channel(srv.ctx.pool)
        async with srv.client() as hook, srv.client(channel.api_key) as api:
            assert (await post_signed(hook, channel.channel_id, raw("text.json"))).status_code == 200
            conversation_id = await srv.ctx.pool.fetchval("SELECT id FROM conversations")
            yield srv, api, conversation_id


async def _reply(api, conversation_id: int, text: str, **extra) -> dict:
    response = await api.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": text, **extra},
                              headers={"Idempotency-Key": f"key-{text}"})
    assert response.status_code == 202, response.text
    return response.json()


async def _settled(srv, message_id: int):
    async def check():
        row = await srv.ctx.pool.fetchrow("SELECT * FROM messages WHERE id = $1", message_id)
        return row if row["status"] in ("sent", "failed") else None

    return await eventually(check)


async def _attempts(srv, message_id: int) -> list[str]:
    rows = await srv.ctx.pool.fetch(
        """SELECT a.outcome FROM outbound_attempts a JOIN outbound_jobs j ON j.id = a.job_id
           WHERE j.message_id = $1 ORDER BY a.attempt""", message_id)
    return [r["outcome"] for r in rows]


async def test_a_reply_is_sent_once_and_its_wamid_recorded(setup, graph):
    srv, api, conversation_id = setup
    lena_text_id = await srv.ctx.pool.fetchval("SELECT id FROM messages WHERE external_id = $1", LENA_TEXT)
    queued = await _reply(api, conversation_id, "Ja, sie ist unterwegs.", reply_to_id=lena_text_id)
    assert queued["status"] == "pending"
    sent = await _settled(srv, queued["id"])
    assert sent["status"] == "sent"
    (delivered,) = graph.delivered_with_text("Ja, sie ist unterwegs.")
    assert sent["external_id"] == delivered.wamid
    assert delivered.body["context"] == {"message_id": LENA_TEXT}
    # Keyed on her user id, but her phone is known: the phone takes precedence.
    assert delivered.body["to"] == "4915112345678" and "recipient" not in delivered.body
    assert len(graph.sends_with_text("Ja, sie ist unterwegs.")) == 1
    assert await _attempts(srv, queued["id"]) == ["sent"]
    # A repeat of the request (same Idempotency-Key) sends nothing more.
    again = await api.post(f"/api/v1/conversations/{conversation_id}/messages",
                           json={"text": "Ja, sie ist unterwegs.", "reply_to_id": lena_text_id},
                           headers={"Idempotency-Key": "key-Ja, sie ist unterwegs."})
    assert again.status_code == 200 and again.json()["id"] == queued["id"]
    assert len(graph.sends_with_text("Ja, sie ist unterwegs.")) == 1
    # WhatsApp echoes our own send and reports its delivery: no second message, the status moves on.
    async with srv.client() as hook:
        await post_signed(hook, sent["channel_id"], echo(delivered.wamid, "Ja, sie ist unterwegs."))
        await post_signed(hook, sent["channel_id"], status(delivered.wamid, "delivered"))
    assert await srv.ctx.pool.fetchval("SELECT count(*) FROM messages WHERE direction = 'outbound'") == 1
    assert await srv.ctx.pool.fetchval("SELECT status FROM messages WHERE id = $1", queued["id"]) == "delivered"


async def test_rate_limited_twice_then_sent_makes_one_provider_message(setup, graph):
    srv, api, conversation_id = setup
    graph.fail_next_sends(
        PHONE_NUMBER_ID,
        ScriptedError(429, {"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException",
                                      "code": 130429}}, {"Retry-After": "0"}),
        graph_error(400, 131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit"),
    )
    queued = await _reply(api, conversation_id, "Heute zwischen 10 und 12 Uhr.")
    sent = await _settled(srv, queued["id"])
    assert sent["status"] == "sent"
    assert len(graph.sends_with_text("Heute zwischen 10 und 12 Uhr.")) == 3  # two refusals, one success
    assert len(graph.delivered_with_text("Heute zwischen 10 und 12 Uhr.")) == 1
    assert await _attempts(srv, queued["id"]) == ["transient_error", "transient_error", "sent"]


async def test_outside_the_24_hour_window_the_message_fails_with_code_and_reason(setup, graph):
    srv, api, conversation_id = setup
    graph.fail_next_sends(PHONE_NUMBER_ID, graph_error(
        400, 131047, "(#131047) Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last replied."))
    queued = await _reply(api, conversation_id, "Sind Sie noch da?")
    failed = await _settled(srv, queued["id"])
    assert failed["status"] == "failed"
    assert failed["error_code"] == "131047"
    assert "24 hours" in failed["error_message"]
    assert len(graph.sends_with_text("Sind Sie noch da?")) == 1  # never retried
    assert graph.delivered_with_text("Sind Sie noch da?") == []
    assert await _attempts(srv, queued["id"]) == ["permanent_error"]
    api_view = (await api.get(f"/api/v1/messages/{queued['id']}")).json()
    assert api_view["error"]["code"] == "131047"


async def test_every_message_reaches_the_provider_exactly_once(setup, graph):
    srv, api, conversation_id = setup
    texts = [f"Nachricht {n}" for n in range(6)]
    queued = [await _reply(api, conversation_id, t) for t in texts]
    for item in queued:
        assert (await _settled(srv, item["id"]))["status"] == "sent"
    for text in texts:
        assert len(graph.sends_with_text(text)) == 1, text


async def test_reading_the_conversation_marks_the_latest_message_read_when_the_channel_opts_in(setup, graph):
    srv, api, conversation_id = setup
    pool = srv.ctx.pool
    account_id, channel_id = await pool.fetchrow(
        "SELECT account_id, channel_id FROM conversations WHERE id = $1", conversation_id)
    receipts = srv.ctx.extras["whatsapp_read_receipts"]
    assert await receipts.mark(account_id, conversation_id) is False  # not opted in
    assert graph.reads == []
    await pool.execute("UPDATE channels SET config = config || '{\"mark_read\": true}' WHERE id = $1", channel_id)
    async with srv.client() as hook:
        await post_signed(hook, channel_id, raw("reply_with_context.json"))
    response = await api.post(f"/api/v1/conversations/{conversation_id}/read")
    assert response.status_code == 200 and response.json()["unread_count"] == 0
    (read,) = await eventually(lambda: _reads(graph))
    assert read.body == {"messaging_product": "whatsapp", "status": "read",
                         "message_id": "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFC1pbi0wMDA4MjU0MTk4OUQ1M0YxAA=="}
    assert read.authorization == f"Bearer {ACCESS_TOKEN}"
    assert await receipts.mark(account_id, conversation_id) is False  # already marked: not sent again


async def _reads(graph):
    return list(graph.reads)
