"""Creating Telegram channels: the setup hook alone, then through the channels API with the supervisor running."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.broker import InProcessBroker
from gateway.config import load_settings
from gateway.context import AppContext, ChannelSetup
from gateway.http import ApiError
from gateway.telegram_runtime import setup_channel
from inbox.accounts import create_account
from tests.fakes.bot_api import BAD_GATEWAY, FakeBotApi, wait_until
from tests.redis_server import free_port
from tests.server import run_server
from tests.telegram.helpers import SECRET, TOKEN, text_update

OTHER_TOKEN = "7099999999:AAAnotherBotToken_abcdefghijklmnop"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    api = FakeBotApi()
    api.add_bot(TOKEN)
    api.add_bot(OTHER_TOKEN, bot_id=7099999999, username="other_bot")
    async with api.running():
        yield api


@pytest.fixture
def ctx(fake) -> AppContext:
    # The setup hook talks to the Bot API only: no database needed.
    return AppContext(settings=load_settings(telegram_api_base=fake.url), pool=None,  # type: ignore[arg-type]
                      broker=InProcessBroker())


async def test_setup_learns_the_bot_id_and_username_with_get_me(ctx, fake):
    setup = await setup_channel(ctx, {"mode": "polling"}, {"bot_token": TOKEN}, None)
    assert setup == ChannelSetup(
        provider_key="7012345678",
        config={"mode": "polling", "bot_id": 7012345678, "bot_username": "acme_support_bot"},
    )
    assert fake.bots[TOKEN].calls_to("setWebhook") == []


async def test_webhook_mode_sets_the_webhook_once_the_channel_id_is_known(ctx, fake):
    config = {"mode": "webhook", "public_url": "https://inbox.example.com/"}
    secrets = {"bot_token": TOKEN, "webhook_secret": SECRET}
    await setup_channel(ctx, config, secrets, None)
    assert fake.bots[TOKEN].webhook is None
    await setup_channel(ctx, config, secrets, 42)
    assert fake.bots[TOKEN].webhook == {
        "url": "https://inbox.example.com/webhooks/telegram/42",
        "secret_token": SECRET,
        "allowed_updates": ["message", "channel_post", "edited_message", "edited_channel_post", "my_chat_member",
                            "callback_query", "message_reaction"],
    }


@pytest.mark.parametrize(
    ("config", "secrets", "status", "code"),
    [
        ({"mode": "polling"}, {"bot_token": "123:not-a-bot"}, 422, "invalid_credentials"),
        ({"mode": "polling"}, {}, 422, "invalid_credentials"),
        ({"mode": "carrier-pigeon"}, {"bot_token": TOKEN}, 422, "invalid_config"),
        ({"mode": "webhook"}, {"bot_token": TOKEN}, 422, "invalid_config"),
        ({"mode": "webhook"}, {"bot_token": TOKEN, "webhook_secret": "has spaces"}, 422, "invalid_config"),
        ({"mode": "polling", "public_url": "ftp://x"}, {"bot_token": TOKEN}, 422, "invalid_config"),
        ({"mode": "polling", "poll_timeout": 600}, {"bot_token": TOKEN}, 422, "invalid_config"),
    ],
)
async def test_bad_settings_and_rejected_tokens_are_422(ctx, config, secrets, status, code):
    with pytest.raises(ApiError) as caught:
        await setup_channel(ctx, config, secrets, None)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert "not-a-bot" not in caught.value.message


async def test_an_unreachable_or_failing_bot_api_is_502(ctx, fake):
    fake.bots[TOKEN].fail_next("getMe", BAD_GATEWAY)
    with pytest.raises(ApiError) as failing:
        await setup_channel(ctx, {"mode": "polling"}, {"bot_token": TOKEN}, None)
    ctx.settings = load_settings(telegram_api_base=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ApiError) as unreachable:
        await setup_channel(ctx, {"mode": "polling"}, {"bot_token": TOKEN}, None)
    assert (failing.value.status, unreachable.value.status) == (502, 502)


# -- through the REST API ------------------------------------------------------------


async def test_channels_created_changed_and_deleted_through_the_api_start_switch_and_stop_the_bot(
    db_url, pool, fake
):
    bot = fake.bots[TOKEN]
    _, key = await create_account(pool, "acme")
    _, other_key = await create_account(pool, "globex")
    async with run_server(db_url, telegram_api_base=fake.url, gateway_lease_interval=0.1) as server, \
            server.client(key) as api, server.client(other_key) as other:
        created = await api.post("/api/v1/channels", json={
            "type": "telegram", "name": "support", "config": {"mode": "webhook", "public_url": server.url},
            "secrets": {"bot_token": TOKEN, "webhook_secret": SECRET},
        })
        assert created.status_code == 201, created.text
        channel = created.json()
        hook_url = f"{server.url}/webhooks/telegram/{channel['id']}"
        assert channel["webhook_url"] == hook_url
        assert channel["config"]["bot_id"] == 7012345678
        assert TOKEN not in created.text and SECRET not in created.text
        assert bot.webhook is not None and bot.webhook["url"] == hook_url

        # The bot now posts its updates to us.
        bot.push(text_update(1, 521937406, 1))
        await wait_until(lambda: not bot.pending)
        assert await pool.fetchval("SELECT count(*) FROM messages WHERE channel_id = $1", channel["id"]) == 1

        # A second account cannot claim the same bot.
        taken = await other.post("/api/v1/channels", json={
            "type": "telegram", "name": "mine", "config": {"mode": "polling"}, "secrets": {"bot_token": TOKEN},
        })
        assert taken.status_code == 409

        rejected = await api.post("/api/v1/channels", json={
            "type": "telegram", "name": "x", "config": {"mode": "polling"},
            "secrets": {"bot_token": "7000000000:Unknown"},
        })
        assert (rejected.status_code, rejected.json()["error"]["code"]) == (422, "invalid_credentials")

        # Switching to polling: the runner restarts, removes the webhook and polls.
        switched = await api.patch(f"/api/v1/channels/{channel['id']}", json={"config": {"mode": "polling"}})
        assert switched.status_code == 200, switched.text
        assert switched.json()["webhook_url"] is None
        await wait_until(lambda: bot.webhook is None and bot.calls_to("getUpdates"))
        bot.push(text_update(2, 521937406, 2))
        await wait_until(lambda: not bot.pending)
        await wait_until(lambda: _count(pool, channel["id"], 2))

        # Deleted: the poller stops.
        assert (await api.delete(f"/api/v1/channels/{channel['id']}")).status_code == 204
        supervisor = server.ctx.extras["channel_supervisor"]
        await wait_until(lambda: channel["id"] not in supervisor.running)
        polls = len(bot.calls_to("getUpdates"))
        bot.push(text_update(3, 521937406, 3))
    assert len(bot.calls_to("getUpdates")) == polls
    assert bot.pending


async def _count(pool, channel_id: int, n: int) -> bool:
    return await pool.fetchval("SELECT count(*) FROM messages WHERE channel_id = $1", channel_id) == n
