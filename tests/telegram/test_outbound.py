"""Outbound through python-telegram-bot against the fake Bot API: the sender alone, then the outbound worker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from telegram.error import NetworkError, TimedOut

from channels.telegram.client import BotPool
from channels.telegram.parse import parse_update
from channels.telegram.sender import TelegramSender, translate_error
from gateway import pipeline, telegram_runtime
from gateway.broker import InProcessBroker
from gateway.config import load_settings
from gateway.context import AppContext
from gateway.outbound_worker import OutboundConfig, OutboundWorker
from inbox.outbound import enqueue_message
from schema.enums import ChannelType
from schema.outbound import OutboundRequest, PermanentSendError, TransientSendError
from tests.fakes.bot_api import BAD_GATEWAY, BLOCKED, CHAT_NOT_FOUND, FakeBot, FakeBotApi, too_many_requests
from tests.redis_server import free_port
from tests.telegram.helpers import TOKEN, fixture, make_telegram_channel


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    api = FakeBotApi()
    api.add_bot(TOKEN)
    async with api.running():
        yield api


@pytest.fixture
async def sender(fake: FakeBotApi) -> AsyncIterator[TelegramSender]:
    bots = BotPool(fake.url)
    yield TelegramSender(bots)
    await bots.close()


def request(to: str = "521937406", text: str = "Thanks, we refunded the duplicate charge.", *,
            reply_to: str | None = None, token: str = TOKEN) -> OutboundRequest:
    return OutboundRequest(
        job_id=1, message_id=1, attempt=1, channel_id=1, channel_type=ChannelType.TELEGRAM,
        channel_config={"mode": "polling"}, channel_secrets={"bot_token": token}, to=to, text=text,
        reply_to_external_id=reply_to,
    )


def the_bot(fake: FakeBotApi) -> FakeBot:
    return fake.bots[TOKEN]


async def test_a_text_is_sent_to_the_chat_and_identified_as_chat_colon_message_id(fake, sender):
    result = await sender.send(request())
    (sent,) = the_bot(fake).sent
    assert result.external_id == f"521937406:{sent['message_id']}"
    assert result.sent_at is not None
    (call,) = the_bot(fake).calls_to("sendMessage")
    assert call.params["chat_id"] == 521937406
    assert call.params["text"] == "Thanks, we refunded the duplicate charge."
    assert "reply_parameters" not in call.params


async def test_a_reply_names_the_replied_message_id_within_the_chat(fake, sender):
    await sender.send(request(reply_to="521937406:1846"))
    await sender.send(request(reply_to="521937406:cb2241742958113270611"))  # a button press: no reply
    await sender.send(request(reply_to="99:5"))  # another chat's message: no reply
    first, second, third = the_bot(fake).calls_to("sendMessage")
    assert first.params["reply_parameters"] == {"message_id": 1846, "allow_sending_without_reply": True}
    assert "reply_parameters" not in second.params
    assert "reply_parameters" not in third.params


async def test_a_group_is_addressed_by_its_negative_chat_id(fake, sender):
    result = await sender.send(request(to="-1002143658709", text="We are on it"))
    assert result.external_id.startswith("-1002143658709:")
    assert the_bot(fake).calls_to("sendMessage")[0].params["chat_id"] == -1002143658709


async def test_one_bot_is_initialised_once_and_reused_for_every_send(fake, sender):
    for _ in range(3):
        await sender.send(request())
    assert len(the_bot(fake).calls_to("getMe")) == 1
    assert len(the_bot(fake).sent) == 3


async def test_flood_control_is_transient_with_telegrams_retry_after(fake, sender):
    the_bot(fake).fail_next("sendMessage", too_many_requests(17))
    with pytest.raises(TransientSendError) as caught:
        await sender.send(request())
    assert (caught.value.code, caught.value.retry_after) == ("429", 17.0)


async def test_a_blocked_bot_and_an_unknown_chat_are_permanent_with_the_reason(fake, sender):
    the_bot(fake).fail_next("sendMessage", BLOCKED, CHAT_NOT_FOUND)
    with pytest.raises(PermanentSendError) as blocked:
        await sender.send(request())
    with pytest.raises(PermanentSendError) as missing:
        await sender.send(request())
    assert (blocked.value.code, blocked.value.message) == ("403", "Forbidden: bot was blocked by the user")
    assert (missing.value.code, missing.value.message) == ("400", "Chat not found")


async def test_a_telegram_5xx_is_transient(fake, sender):
    the_bot(fake).fail_next("sendMessage", BAD_GATEWAY)
    with pytest.raises(TransientSendError) as caught:
        await sender.send(request())
    assert caught.value.code == "5xx"


async def test_an_unreachable_bot_api_is_transient():
    bots = BotPool(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(TransientSendError) as caught:
            await TelegramSender(bots).send(request())
    finally:
        await bots.close()
    assert caught.value.code == "network"


async def test_a_rejected_token_is_permanent_and_never_echoes_the_token(fake, sender):
    with pytest.raises(PermanentSendError) as caught:
        await sender.send(request(token="123:wrong"))
    assert caught.value.code == "401"
    assert "123:wrong" not in str(caught.value)


async def test_bad_requests_fail_before_reaching_telegram(fake, sender):
    with pytest.raises(PermanentSendError):
        await sender.send(request(to="@not-a-chat-id"))
    with pytest.raises(PermanentSendError):
        await sender.send(request(text=""))
    assert the_bot(fake).calls_to("sendMessage") == []


def test_a_timeout_after_the_request_left_is_delivery_unknown_but_a_refused_connection_is_transient():
    read = TimedOut()
    read.__cause__ = httpx.ReadTimeout("read")
    refused = NetworkError("httpx.ConnectError: refused")
    refused.__cause__ = httpx.ConnectError("refused")
    dropped = NetworkError("httpx.RemoteProtocolError: closed")
    dropped.__cause__ = httpx.RemoteProtocolError("closed")
    assert isinstance(translate_error(read), PermanentSendError)
    assert translate_error(read).code == "delivery_unknown"
    assert translate_error(dropped).code == "delivery_unknown"
    assert isinstance(translate_error(refused), TransientSendError)
    # Before the message itself (getMe on first use) nothing can have been sent.
    assert isinstance(translate_error(read, may_have_sent=False), TransientSendError)


# -- through the outbound worker ---------------------------------------------------

FAST = OutboundConfig(concurrency=1, poll_interval=0.01, backoff_base=0.001, backoff_cap=0.01,
                      lease_seconds=300, send_timeout=20, recover_interval=60)


@pytest.fixture
async def ctx(db_url, pool, fake) -> AsyncIterator[AppContext]:
    context = AppContext(settings=load_settings(database_url=db_url, telegram_api_base=fake.url), pool=pool,
                         broker=InProcessBroker())
    telegram_runtime.install(context)
    yield context
    await context.extras["telegram_bots"].close()


async def _conversation_with_maya(ctx: AppContext) -> tuple[int, int]:
    channel = await make_telegram_channel(ctx.pool, mode="polling")
    update = fixture("reply")
    await pipeline.ingest(ctx, channel=channel, payload=json.dumps(update), dedup_key=str(update["update_id"]),
                          parsed=parse_update(update))
    row = await ctx.pool.fetchrow("SELECT id, conversation_id FROM messages WHERE external_id = '521937406:1846'")
    return channel.account_id, row["conversation_id"]


async def _send_through_worker(ctx: AppContext, *, reply_to_inbound: bool = False) -> int:
    account_id, conversation_id = await _conversation_with_maya(ctx)
    reply_to = await ctx.pool.fetchval("SELECT id FROM messages WHERE external_id = '521937406:1846'")
    async with ctx.pool.acquire() as conn:
        queued = await enqueue_message(conn, account_id=account_id, conversation_id=conversation_id,
                                       text="Thanks, we refunded the duplicate charge.", author="agent-1",
                                       reply_to_id=reply_to if reply_to_inbound else None)
    worker = OutboundWorker(ctx, FAST)
    async with asyncio.timeout(30):
        while await ctx.pool.fetchval(
            "SELECT count(*) FROM outbound_jobs WHERE status IN ('queued', 'in_flight')"
        ):
            if not await worker.run_once():
                await asyncio.sleep(0.01)
    return queued.message_id


async def test_the_worker_sends_a_reply_and_stores_telegrams_message_id(ctx, fake):
    message_id = await _send_through_worker(ctx, reply_to_inbound=True)
    row = await ctx.pool.fetchrow("SELECT status, external_id, sent_at FROM messages WHERE id = $1", message_id)
    (sent,) = the_bot(fake).sent
    assert (row["status"], row["external_id"]) == ("sent", f"521937406:{sent['message_id']}")
    assert the_bot(fake).calls_to("sendMessage")[0].params["reply_parameters"]["message_id"] == 1846


async def test_a_429_makes_the_worker_wait_retry_after_and_send_exactly_once(ctx, fake):
    the_bot(fake).fail_next("sendMessage", too_many_requests(1))
    message_id = await _send_through_worker(ctx)
    row = await ctx.pool.fetchrow("SELECT status FROM messages WHERE id = $1", message_id)
    assert row["status"] == "sent"
    assert len(the_bot(fake).calls_to("sendMessage")) == 2
    assert len(the_bot(fake).sent) == 1
    outcomes = await ctx.pool.fetch("SELECT outcome, error_code FROM outbound_attempts ORDER BY attempt")
    assert [(r["outcome"], r["error_code"]) for r in outcomes] == [("transient_error", "429"), ("sent", None)]
    # The retry was scheduled no earlier than Telegram's retry_after.
    gap = await ctx.pool.fetchval(
        "SELECT extract(epoch FROM max(started_at) - min(started_at)) FROM outbound_attempts"
    )
    assert gap >= 1


async def test_a_blocked_bot_fails_the_message_with_the_reason(ctx, fake):
    the_bot(fake).fail_next("sendMessage", BLOCKED)
    message_id = await _send_through_worker(ctx)
    row = await ctx.pool.fetchrow("SELECT status, error_code, error_message FROM messages WHERE id = $1", message_id)
    assert (row["status"], row["error_code"]) == ("failed", "403")
    assert "bot was blocked by the user" in row["error_message"]
    assert len(the_bot(fake).calls_to("sendMessage")) == 1


async def test_a_reply_in_a_forum_topic_names_its_thread(fake, sender):
    topic = request(to="-1001847508954", text="In the topic").model_copy(update={"thread_id": "4"})
    await sender.send(topic)
    await sender.send(request(to="-1001847508954", text="In the group"))
    first, second = the_bot(fake).calls_to("sendMessage")
    assert first.params["message_thread_id"] == 4
    assert "message_thread_id" not in second.params
