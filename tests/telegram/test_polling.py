"""Long polling against the fake Bot API: in-process through the channel supervisor, and the poller alone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from channels.telegram.client import make_bot
from gateway import telegram_runtime
from gateway.broker import InProcessBroker
from gateway.config import load_settings
from gateway.context import AppContext
from gateway.telegram_runtime import TelegramPoller
from inbox.accounts import create_account
from tests.fakes.bot_api import BAD_GATEWAY, FakeBotApi, too_many_requests, wait_until
from tests.server import run_server
from tests.telegram.helpers import (
    SECRET,
    TOKEN,
    UPDATE_FIXTURES,
    assert_fixture_rows,
    count,
    fixture,
    make_telegram_channel,
    snapshot,
    text_update,
)

POLL_TOKEN = "7099999999:AAPollingBotTokenForTests_0123456789"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    api = FakeBotApi()
    api.add_bot(TOKEN)
    api.add_bot(POLL_TOKEN, bot_id=7099999999, username="acme_poll_bot")
    async with api.running():
        yield api


async def _offset(pool, channel_id: int) -> int | None:
    state = await pool.fetchval("SELECT state FROM channels WHERE id = $1", channel_id)
    return state.get("offset")


async def test_every_fixture_arrives_the_same_through_polling_as_through_the_webhook(pool, db_url, fake):
    pushing, polling = fake.bots[TOKEN], fake.bots[POLL_TOKEN]
    async with run_server(db_url, telegram_api_base=fake.url, gateway_lease_interval=0.1) as server:
        hook = await make_telegram_channel(pool, public_url=server.url)
        second_account, _ = await create_account(pool, "globex")
        poll = await make_telegram_channel(pool, second_account, mode="polling", token=POLL_TOKEN,
                                           provider_key="7099999999")
        await wait_until(lambda: pushing.webhook is not None)
        for name in UPDATE_FIXTURES:
            pushing.push(fixture(name))
            polling.push(fixture(name))
        await wait_until(lambda: not pushing.pending and not polling.pending)
        await wait_until(lambda: _all_stored(pool, poll.id))
        # The button press is answered however it arrived.
        await wait_until(lambda: pushing.calls_to("answerCallbackQuery") and polling.calls_to("answerCallbackQuery"))
        press = fixture("callback_query")["callback_query"]["id"]
        assert [c.params["callback_query_id"] for c in polling.calls_to("answerCallbackQuery")] == [press]
    by_webhook, by_polling = await snapshot(pool, hook.id), await snapshot(pool, poll.id)
    assert by_polling == by_webhook
    assert_fixture_rows(by_polling)
    assert await _offset(pool, poll.id) == fixture("my_chat_member_blocked")["update_id"] + 1
    assert polling.webhook is None
    assert polling.calls_to("deleteWebhook")


async def _all_stored(pool, channel_id: int) -> bool:
    stored = await count(pool, "SELECT count(*) FROM inbound_events WHERE channel_id = $1", channel_id)
    return stored == len(UPDATE_FIXTURES) and await _offset(pool, channel_id) is not None


# -- the poller alone -------------------------------------------------------------


@pytest.fixture
async def ctx(db_url, pool, fake) -> AsyncIterator[AppContext]:
    context = AppContext(settings=load_settings(database_url=db_url, telegram_api_base=fake.url), pool=pool,
                         broker=InProcessBroker())
    telegram_runtime.install(context)
    yield context
    await context.extras["telegram_bots"].close()


@pytest.fixture
async def poller(ctx, fake) -> AsyncIterator[TelegramPoller]:
    channel = await make_telegram_channel(ctx.pool, mode="polling", token=POLL_TOKEN, provider_key="7099999999")
    bot = make_bot(fake.url, POLL_TOKEN, polling=True)
    poller = TelegramPoller(ctx, channel, bot)
    poller.timeout = 0
    yield poller
    await bot.shutdown()


async def test_the_offset_is_stored_after_the_updates_and_confirms_them_to_telegram(poller, fake, pool):
    bot = fake.bots[POLL_TOKEN]
    bot.batch_limit = 2
    ids = [bot.push(text_update(100 + n, 5000 + n, 1)) for n in range(3)]
    await poller._prepare()
    assert await poller.poll_once() == 2
    assert await _offset(pool, poller.channel.id) == ids[1] + 1
    assert await poller.poll_once() == 1
    assert await poller.poll_once() == 0
    assert await _offset(pool, poller.channel.id) == ids[2] + 1
    assert bot.pending == []
    offsets = [c.params.get("offset") for c in bot.calls_to("getUpdates")]
    assert offsets == [None, ids[1] + 1, ids[2] + 1]
    assert await count(pool, "SELECT count(*) FROM messages") == 3


async def test_updates_redelivered_after_a_crash_before_the_offset_was_saved_are_stored_once(poller, fake, pool):
    bot = fake.bots[POLL_TOKEN]
    first = [text_update(200 + n, 6000 + n, 7) for n in range(3)]
    for update in first:
        bot.push(update)
    await poller._prepare()
    await poller.poll_once()
    # The crash: the offset write is lost, and Telegram, never told, sends the same updates again.
    await pool.execute("UPDATE channels SET state = '{}' WHERE id = $1", poller.channel.id)
    for update in first:
        bot.push(update)
    bot.push(text_update(203, 6003, 7))
    restarted = TelegramPoller(poller.ctx, poller.channel, poller.bot)
    restarted.timeout = 0
    await restarted._prepare()
    assert restarted.offset is None
    await restarted.poll_once()
    assert await count(pool, "SELECT count(*) FROM messages") == 4
    assert await count(pool, "SELECT count(*) FROM inbound_events") == 4
    assert await _offset(pool, poller.channel.id) == 204


async def test_a_restarted_poller_resumes_from_the_stored_offset(poller, fake, pool):
    await pool.execute("""UPDATE channels SET state = '{"offset": 300}' WHERE id = $1""", poller.channel.id)
    bot = fake.bots[POLL_TOKEN]
    bot.push(text_update(300, 7000, 1))
    await poller._prepare()
    await poller.poll_once()
    assert bot.calls_to("getUpdates")[0].params["offset"] == 300


async def test_the_poller_removes_a_webhook_before_polling(poller, fake, pool):
    bot = fake.bots[POLL_TOKEN]
    bot.webhook = {"url": "https://elsewhere.example/hook", "secret_token": None, "allowed_updates": None}
    bot.push(text_update(400, 8000, 1))
    await poller._prepare()
    await poller.poll_once()
    assert bot.webhook is None
    assert await count(pool, "SELECT count(*) FROM messages") == 1


async def test_flood_control_and_server_errors_are_waited_out(db_url, fake, pool):
    bot = fake.bots[POLL_TOKEN]
    bot.fail_next("getUpdates", too_many_requests(1), BAD_GATEWAY)
    bot.push(text_update(500, 9000, 1))
    async with run_server(db_url, telegram_api_base=fake.url, gateway_lease_interval=0.1):
        channel = await make_telegram_channel(pool, mode="polling", token=POLL_TOKEN, provider_key="7099999999")
        await wait_until(lambda: _offset(pool, channel.id))
    assert len(bot.calls_to("getUpdates")) >= 3  # the 429, the 502, then the answer
    assert await count(pool, "SELECT count(*) FROM messages") == 1


async def test_an_update_the_parser_rejects_is_dead_lettered_and_polling_moves_on(poller, fake, pool):
    bot = fake.bots[POLL_TOKEN]
    bot.push({"update_id": 600, "message": {"message_id": "x", "chat": {"id": 1, "type": "private"}}})
    bot.push(text_update(601, 9100, 1))
    await poller._prepare()
    await poller.poll_once()
    rows = await pool.fetch("SELECT dedup_key, status FROM inbound_events ORDER BY dedup_key")
    assert [(r["dedup_key"], r["status"]) for r in rows] == [("600", "failed"), ("601", "processed")]
    assert json.loads(await pool.fetchval("SELECT payload FROM inbound_events WHERE dedup_key = '600'"))[
        "update_id"] == 600
    assert await _offset(pool, poller.channel.id) == 602


async def test_a_webhook_channel_never_polls(db_url, fake, pool):
    bot = fake.bots[TOKEN]
    async with run_server(db_url, telegram_api_base=fake.url, gateway_lease_interval=0.1) as server:
        channel = await make_telegram_channel(pool, public_url=server.url)
        await wait_until(lambda: bot.webhook is not None)
        supervisor = server.ctx.extras["channel_supervisor"]
        await wait_until(lambda: channel.id in supervisor.running)
    assert bot.calls_to("getUpdates") == []
    assert bot.webhook["secret_token"] == SECRET


async def test_a_polling_channel_deleted_during_a_long_poll_stops_at_once_and_never_polls_again(db_url, fake, pool):
    bot = fake.bots[POLL_TOKEN]
    async with run_server(db_url, telegram_api_base=fake.url, gateway_lease_interval=0.1) as server:
        supervisor = server.ctx.extras["channel_supervisor"]
        channel = await make_telegram_channel(pool, mode="polling", token=POLL_TOKEN, provider_key="7099999999",
                                              poll_timeout=30)
        await wait_until(lambda: bot.calls_to("getUpdates"))  # a long poll is in flight, nothing to answer
        await pool.execute("UPDATE channels SET deleted_at = now() WHERE id = $1", channel.id)
        supervisor.wake()
        # Stopped by its cancellation (well before the poll's 30 s), not abandoned at the deadline.
        await wait_until(lambda: channel.id not in supervisor.running)
        assert supervisor.abandoned == set()
        polls, passes = len(bot.calls_to("getUpdates")), supervisor.passes
        await wait_until(lambda: supervisor.passes >= passes + 3)
        assert len(bot.calls_to("getUpdates")) == polls


async def _poller_state(pool, channel_id: int) -> dict:
    state = await pool.fetchval("SELECT state FROM channels WHERE id = $1", channel_id)
    return state.get("poller") or {}


async def test_a_pollers_connection_shows_in_the_channel_resource(pool, db_url, fake):
    account_id, key = await create_account(pool, "acme")
    async with run_server(db_url, telegram_api_base=fake.url, gateway_lease_interval=0.1) as server:
        good = await make_telegram_channel(pool, account_id, mode="polling", token=POLL_TOKEN,
                                           provider_key="7099999999")
        bad = await make_telegram_channel(pool, account_id, mode="polling", token="7011111111:AAUnknownTokenForTests_x",
                                          provider_key="7011111111")
        await wait_until(lambda: _poller_has(pool, good.id, "connected"))
        await wait_until(lambda: _poller_has(pool, bad.id, "failed"))
        async with server.client(key) as api:
            assert (await api.get(f"/api/v1/channels/{good.id}")).json()["connection"] == {
                "status": "connected", "reason": None}
            assert (await api.get(f"/api/v1/channels/{bad.id}")).json()["connection"] == {
                "status": "failed", "reason": "Telegram rejects the bot token"}


async def _poller_has(pool, channel_id: int, status: str) -> bool:
    return (await _poller_state(pool, channel_id)).get("status") == status
