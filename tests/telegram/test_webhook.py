from __future__ import annotations

import asyncio
import hashlib
import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.bot_api import FakeBotApi, wait_until
from tests.server import run_server
from tests.telegram.helpers import (
    MEDIA_FILES,
    SECRET,
    TOKEN,
    UPDATE_FIXTURES,
    assert_fixture_rows,
    count,
    fixture,
    fixture_text,
    make_telegram_channel,
    snapshot,
    text_update,
)

HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}


def url(channel_id: int) -> str:
    return f"/webhooks/telegram/{channel_id}"


async def post(client: httpx.AsyncClient, channel_id: int, body: str | bytes, headers=HEADERS) -> httpx.Response:
    return await client.post(url(channel_id), content=body, headers=headers)


async def test_every_fixture_posted_to_the_webhook_is_stored_as_expected(pool, db_url):
    channel = await make_telegram_channel(pool)
    async with run_server(db_url, gateway_workers=False) as server, server.client() as client:
        for name in UPDATE_FIXTURES:
            response = await post(client, channel.id, fixture_text(name))
            assert response.status_code == 200, (name, response.text)
            assert response.json()["status"] == "processed"
    assert_fixture_rows(await snapshot(pool, channel.id))


async def test_updates_pushed_by_the_bot_api_to_the_webhook_it_was_given_are_stored(pool, db_url, tmp_path):
    """End to end: the runner calls setWebhook with the public URL and secret; the fake
    Bot API then delivers every fixture there, and media is downloaded through getFile."""
    fake = FakeBotApi()
    bot = fake.add_bot(TOKEN)
    for file_id, content in MEDIA_FILES.items():
        bot.add_file(file_id, content)
    async with fake.running():
        from gateway.media_worker import MediaWorkerConfig

        async with run_server(
            db_url, telegram_api_base=fake.url, gateway_lease_interval=0.1, gateway_media_dir=tmp_path,
            extras={"media_worker_config": MediaWorkerConfig(poll_interval=0.05)},
        ) as server:
            channel = await make_telegram_channel(pool, public_url=server.url)
            await wait_until(lambda: bot.webhook is not None)
            assert bot.webhook == {
                "url": f"{server.url}/webhooks/telegram/{channel.id}",
                "secret_token": SECRET,
                "allowed_updates": ["message", "channel_post", "edited_message", "edited_channel_post",
                                    "my_chat_member", "callback_query", "message_reaction"],
            }
            for name in UPDATE_FIXTURES:
                bot.push(fixture(name))
            await wait_until(lambda: not bot.pending)
            await wait_until(lambda: _stored(pool, 3))
    rows = await snapshot(pool, channel.id)
    assert len(rows["inbound"]) == len(UPDATE_FIXTURES)
    assert all(status == 200 for _, status in bot.webhook_deliveries)
    stored = await pool.fetch("SELECT provider_id, sha256, status FROM media_files ORDER BY provider_id")
    assert {r["provider_id"]: (r["sha256"], r["status"]) for r in stored} == {
        file_id: (hashlib.sha256(content).hexdigest(), "stored") for file_id, content in MEDIA_FILES.items()
    }


async def _stored(pool, n: int) -> bool:
    return await count(pool, "SELECT count(*) FROM media_files WHERE status = 'stored'") == n


async def test_the_same_update_delivered_twice_is_one_message(pool, db_url):
    channel = await make_telegram_channel(pool)
    async with run_server(db_url, gateway_workers=False) as server, server.client() as client:
        first = await post(client, channel.id, fixture_text("text_message"))
        again = await post(client, channel.id, fixture_text("text_message"))
    assert first.json()["status"] == "processed"
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert await count(pool, "SELECT count(*) FROM messages WHERE channel_id = $1", channel.id) == 1
    assert await count(pool, "SELECT count(*) FROM inbound_events WHERE channel_id = $1", channel.id) == 1


async def test_two_chats_each_sending_message_id_1_are_two_messages(pool, db_url):
    channel = await make_telegram_channel(pool)
    async with run_server(db_url, gateway_workers=False) as server, server.client() as client:
        for update in (text_update(1, 1001, 1), text_update(2, 1002, 1), text_update(3, -100500, 1, chat_type="group")):
            assert (await post(client, channel.id, json.dumps(update))).status_code == 200
    rows = await snapshot(pool, channel.id)
    assert [m["external_id"] for m in rows["messages"]] == ["-100500:1", "1001:1", "1002:1"]
    assert rows["conversations"] == 3


async def test_a_wrong_or_missing_secret_is_401_and_stores_nothing(pool, db_url):
    channel = await make_telegram_channel(pool)
    polling = await make_telegram_channel(pool, mode="polling", secret=None, provider_key="99")
    body = fixture_text("text_message")
    async with run_server(db_url, gateway_workers=False) as server, server.client() as client:
        wrong = await post(client, channel.id, body, {**HEADERS, "X-Telegram-Bot-Api-Secret-Token": "nope"})
        missing = await post(client, channel.id, body, {"Content-Type": "application/json"})
        prefix = await post(client, channel.id, body, {**HEADERS, "X-Telegram-Bot-Api-Secret-Token": SECRET[:-1]})
        no_secret_configured = await post(client, polling.id, body, {**HEADERS, "X-Telegram-Bot-Api-Secret-Token": ""})
    for response in (wrong, missing, prefix, no_secret_configured):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_secret"
    assert await count(pool, "SELECT count(*) FROM inbound_events") == 0
    assert await count(pool, "SELECT count(*) FROM messages") == 0


async def test_unknown_channels_malformed_json_and_oversized_bodies_are_refused(pool, db_url):
    channel = await make_telegram_channel(pool)
    whatsapp_id = await pool.fetchval(
        "INSERT INTO channels (account_id, type, name) VALUES ($1, 'whatsapp', 'wa') RETURNING id", channel.account_id
    )
    async with run_server(db_url, gateway_workers=False, gateway_max_body_bytes=4096) as server, \
            server.client() as client:
        for target in (999999, whatsapp_id, "abc", 2**70):
            response = await client.post(f"/webhooks/telegram/{target}", content="{}", headers=HEADERS)
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"
        malformed = await post(client, channel.id, b"{not json")
        not_utf8 = await post(client, channel.id, b'{"update_id": 1, "x": "\xff"}')
        too_big = await post(client, channel.id, b"{" + b" " * 5000 + b"}")
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, "malformed_json")
    assert not_utf8.status_code == 400
    assert too_big.status_code == 413
    assert await count(pool, "SELECT count(*) FROM inbound_events") == 0


async def test_an_update_that_cannot_be_normalised_is_a_dead_letter_answered_200(pool, db_url):
    channel = await make_telegram_channel(pool)
    body = json.dumps({"update_id": 77, "message": {"message_id": "x", "chat": {"id": 5, "type": "private"}}})
    async with run_server(db_url, gateway_workers=False) as server, server.client() as client:
        response = await post(client, channel.id, body)
    assert (response.status_code, response.json()["status"]) == (200, "failed")
    row = await pool.fetchrow("SELECT dedup_key, status, error, payload FROM inbound_events")
    assert (row["dedup_key"], row["status"], row["payload"]) == ("77", "failed", body)
    assert row["error"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=15,
)
update_like = st.fixed_dictionaries(
    {"update_id": st.integers(min_value=-(2**70), max_value=2**70)},
    optional={"message": st.dictionaries(
        st.sampled_from(["message_id", "chat", "date", "text", "photo", "from", "caption", "reply_to_message"]),
        json_values, max_size=6)},
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    update_like.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(UPDATE_FIXTURES).map(lambda n: fixture_text(n).encode()),
)


async def test_arbitrary_bodies_with_the_right_secret_never_get_a_500(pool, db_url):
    channel = await make_telegram_channel(pool)
    async with run_server(db_url, gateway_workers=False) as server:
        target = f"{server.url}{url(channel.id)}"

        def run_examples() -> None:
            with httpx.Client(timeout=10) as client:

                @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
                @given(bodies)
                def check(body: bytes) -> None:
                    response = client.post(target, content=body, headers=HEADERS)
                    assert response.status_code in (200, 400), (body, response.status_code, response.text)

                check()

        # The server runs in this event loop; hypothesis drives it from a thread.
        await asyncio.to_thread(run_examples)
    statuses = {r["status"] for r in await pool.fetch("SELECT DISTINCT status FROM inbound_events")}
    assert statuses <= {"processed", "ignored", "failed"}


async def test_a_dead_letter_is_replayed_with_the_current_parser(pool, db_url):
    """As if an older parser had failed on this update: replay stores its message."""
    from gateway.replay import replay

    channel = await make_telegram_channel(pool)
    await pool.execute(
        """INSERT INTO inbound_events (account_id, channel_id, dedup_key, status, error, payload)
           VALUES ($1, $2, '804211730', 'failed', 'old parser bug', $3)""",
        channel.account_id, channel.id, fixture_text("text_message"),
    )
    (result,) = await replay(pool)
    assert str(result.status) == "processed"
    assert await count(pool, "SELECT count(*) FROM messages WHERE external_id = '521937406:1842'") == 1
