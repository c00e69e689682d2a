from __future__ import annotations

import asyncio
import json

import pytest

from channels.whatsapp.client import GraphApiClient
from channels.whatsapp.sender import WhatsAppSender, preferred_recipient
from schema.enums import ChannelType
from schema.outbound import OutboundRequest, PermanentSendError, SendResult, TransientSendError
from tests.fakes.graph_api import ScriptedError, graph_error, running_graph_api
from tests.whatsapp.fixtures import FIXTURES

PHONE_NUMBER_ID = "110987654321098"
TOKEN = "EAAG-test-token"


def request(text: str = "Ihre Bestellung 4711 wird heute zugestellt.", *, to: str = "4915112345678",
            reply_to: str | None = None, token: str = TOKEN) -> OutboundRequest:
    return OutboundRequest(
        job_id=1, message_id=1, attempt=1, channel_id=1, channel_type=ChannelType.WHATSAPP,
        channel_config={"phone_number_id": PHONE_NUMBER_ID}, channel_secrets={"access_token": token},
        to=to, text=text, reply_to_external_id=reply_to,
    )


def fixture_error(name: str) -> dict:
    data = json.loads((FIXTURES / "api" / name).read_text())
    data.pop("_comment", None)
    return data


@pytest.fixture
async def graph():
    async with running_graph_api({PHONE_NUMBER_ID: TOKEN}) as fake:
        yield fake


@pytest.fixture
async def sender(graph):
    client = GraphApiClient(graph.base_url)
    yield WhatsAppSender(client)
    await client.close()


async def test_a_text_is_posted_with_the_bearer_token_and_the_wamid_returned(graph, sender):
    result = await sender.send(request())
    assert isinstance(result, SendResult)
    assert result.external_id.startswith("wamid.")
    (sent,) = graph.delivered
    assert sent.authorization == f"Bearer {TOKEN}"
    expected = fixture_error("send_text_request.json")  # the documented request shape
    assert sent.body == expected


async def test_a_reply_quotes_the_original_through_context(graph, sender):
    original = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFC1pbi0wMDAxN0I4NkQxRjM0RkNDAA=="
    await sender.send(request("Ja, sie ist unterwegs.", reply_to=original))
    (sent,) = graph.delivered
    documented = fixture_error("send_reply_request.json")
    assert sent.body["context"] == documented["context"]
    assert sent.body["to"] == documented["to"]


async def test_a_business_scoped_user_id_is_sent_as_recipient(graph, sender):
    await sender.send(request(to="DE.2384756109283746"))
    (sent,) = graph.delivered
    assert sent.body["recipient"] == "DE.2384756109283746"
    assert "to" not in sent.body


@pytest.mark.parametrize(
    "failure",
    [
        ScriptedError(429, fixture_error("error_130429_rate_limit.json"), {"Retry-After": "7"}),
        ScriptedError(400, fixture_error("error_131056_pair_rate_limit.json")),
        ScriptedError(503, None),
        graph_error(400, 131048, "(#131048) Spam rate limit hit"),
        graph_error(400, 80007, "(#80007) Rate limit issues"),
    ],
)
async def test_rate_limits_and_server_errors_are_transient(graph, sender, failure):
    graph.fail_next_sends(PHONE_NUMBER_ID, failure)
    with pytest.raises(TransientSendError) as caught:
        await sender.send(request())
    if failure.headers:
        assert caught.value.retry_after == 7.0
    assert graph.delivered == []


async def test_the_24_hour_window_fails_permanently_with_code_and_reason(graph, sender):
    graph.fail_next_sends(PHONE_NUMBER_ID, graph_error(
        400, 131047, "(#131047) Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last replied."))
    with pytest.raises(PermanentSendError) as caught:
        await sender.send(request())
    assert caught.value.code == "131047"
    assert "24 hours" in caught.value.message
    assert "Re-engagement" in caught.value.message


async def test_a_wrong_token_fails_permanently(graph, sender):
    with pytest.raises(PermanentSendError) as caught:
        await sender.send(request(token="wrong"))
    assert caught.value.code == "190"


async def test_a_refused_connection_is_transient():
    client = GraphApiClient("http://127.0.0.1:9/v21.0")
    try:
        with pytest.raises(TransientSendError) as caught:
            await WhatsAppSender(client).send(request())
        assert caught.value.code == "network"
    finally:
        await client.close()


async def test_a_channel_without_token_fails_permanently_without_calling_out(graph, sender):
    with pytest.raises(PermanentSendError):
        await sender.send(request(token=""))
    assert graph.sends == []


async def test_mark_read_posts_the_documented_body(graph):
    client = GraphApiClient(graph.base_url)
    try:
        documented = fixture_error("mark_read_request.json")
        await client.mark_read(phone_number_id=PHONE_NUMBER_ID, access_token=TOKEN,
                               message_id=documented["message_id"])
    finally:
        await client.close()
    (read,) = graph.reads
    assert read.body == documented


async def test_a_connection_lost_after_sending_is_not_retried_because_delivery_is_unknown():
    received = []

    async def swallow(reader, writer):
        received.append(await reader.read(65536))  # the request arrives...
        writer.close()  # ...and the answer never does

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = GraphApiClient(f"http://127.0.0.1:{port}/v21.0")
    try:
        with pytest.raises(PermanentSendError) as caught:
            await WhatsAppSender(client).send(request())
        assert caught.value.code == "delivery_unknown"
        assert received and b"POST /v21.0/" in received[0]
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


def test_the_phone_is_preferred_over_the_user_id_whenever_the_contact_has_one():
    assert preferred_recipient("DE.2384756109283746", ("DE.2384756109283746", "4915112345678")) == "4915112345678"
    assert preferred_recipient("4915112345678", ("4915112345678", "DE.2384756109283746")) == "4915112345678"
    assert preferred_recipient("DE.2384756109283746", ("DE.2384756109283746",)) == "DE.2384756109283746"
