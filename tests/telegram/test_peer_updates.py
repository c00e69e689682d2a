"""Telegram traffic written by others (teloxide's test payloads, tests/fixtures/peers/teloxide, MIT) and the
shapes around it: what is conversation content, what is a notice, and what must survive a strict decoder.

Every update is posted to the real webhook endpoint; outcomes are rows in PostgreSQL and the calls the
fake Bot API recorded (answerCallbackQuery, sendMessage with the forum topic).
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.outbound_worker import OutboundConfig
from inbox.accounts import create_account
from tests.fakes.bot_api import BAD_GATEWAY, FakeBotApi, wait_until
from tests.server import run_server
from tests.telegram.helpers import SECRET, TOKEN, fixture, make_telegram_channel, text_update

PEERS = Path(__file__).parent.parent / "fixtures" / "peers" / "teloxide"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
FAST = OutboundConfig(concurrency=1, poll_interval=0.02, backoff_base=0.01, backoff_cap=0.05, max_attempts=3)

# Peer payloads that are notices, not conversation content.
IGNORED = {
    "updates/chat_boost_removed", "updates/chat_boost_updated", "updates/message_reaction_count_updated",
    "updates/pinned_message_works", "updates/new_update_kind_error", "updates/paid_media_purchased_de",
    "messages/chat_boost_added", "messages/giveaway_created", "messages/giveaway_completed",
    "messages/paid_message_price_changed", "messages/suggested_post_approved",
    "messages/suggested_post_approval_failed", "messages/suggested_post_declined",
    "messages/suggested_post_paid", "messages/suggested_post_refunded",
    "messages/issue_475",  # video_chat_started
    "messages/issue_874",  # forum_topic_closed
    "messages/topic_created",
}


def peer(name: str, update_id: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PEERS / f"{name}.json").read_text())
    return data if name.startswith("updates/") else {"update_id": update_id, "message": data}


def peer_names() -> list[str]:
    return sorted(f"{p.parent.name}/{p.stem}" for p in PEERS.glob("*/*.json"))


@pytest.fixture
async def fake():
    api = FakeBotApi()
    api.add_bot(TOKEN)
    async with api.running():
        yield api


@pytest.fixture
async def server(db_url, fake):
    async with run_server(db_url, telegram_api_base=fake.url, extras={"outbound_config": FAST}) as srv:
        yield srv


async def _post(server, channel_id: int, update: dict[str, Any]) -> dict[str, Any]:
    async with server.client() as http:
        response = await http.post(f"/webhooks/telegram/{channel_id}", content=json.dumps(update), headers=HEADERS)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _channel_and_key(pool):
    account_id, api_key = await create_account(pool, "acme")
    return await make_telegram_channel(pool, account_id), api_key


async def _reply(server, api_key: str, conversation_id: int, text: str) -> None:
    async with server.client(api_key) as api:
        response = await api.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": text})
    assert response.status_code == 202, response.text


async def test_every_peer_update_is_a_message_a_change_or_an_ignored_notice_never_a_dead_letter(server):
    pool = server.ctx.pool
    channel = await make_telegram_channel(pool)
    for n, name in enumerate(peer_names()):
        # Two of teloxide's examples share an update_id; Telegram's are unique per bot.
        update = {**peer(name, update_id=900_000 + n), "update_id": 900_000 + n}
        answer = await _post(server, channel.id, update)
        expected = "ignored" if name in IGNORED else "processed"
        assert answer["status"] == expected, name
    # No notice opened a conversation named like "<chat>:u<update_id>".
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE external_id LIKE '%:u%'") == 0
    kinds = {r["external_id"]: r["type"] for r in await pool.fetch("SELECT external_id, type FROM messages")}
    assert kinds["-1001847508954:5"] == "text"  # the forum topic message
    assert await pool.fetchval("SELECT count(*) FROM inbound_events WHERE status = 'failed'") == 0


async def test_a_group_migrated_to_a_supergroup_keeps_its_conversation_and_replies_go_to_the_new_chat(
        server, fake):
    pool = server.ctx.pool
    channel, api_key = await _channel_and_key(pool)
    old, new = -599075523, -1001555296434
    await _post(server, channel.id, text_update(1, old, 15, "before the upgrade", chat_type="group"))
    for n, name in enumerate(("messages/issue_427", "messages/issue_427_2", "messages/issue_427")):
        assert (await _post(server, channel.id, peer(name, update_id=2 + n)))["status"] in ("processed", "duplicate")
    await _post(server, channel.id, text_update(5, new, 2, "after the upgrade", chat_type="supergroup"))
    assert await pool.fetchval("SELECT count(*) FROM conversations") == 1
    assert [r["external_id"] for r in await pool.fetch("SELECT external_id FROM contact_identities")] == [str(new)]
    assert await pool.fetchval("SELECT count(*) FROM messages") == 2  # the notices are no messages
    conversation_id = await pool.fetchval("SELECT id FROM conversations")
    await _reply(server, api_key, conversation_id, "Welcome to the supergroup")
    bot = fake.bots[TOKEN]
    await wait_until(lambda: bot.sent)
    assert bot.calls_to("sendMessage")[0].params["chat_id"] == new


async def test_a_forum_topic_message_keeps_its_thread_and_the_reply_goes_to_that_topic(server, fake):
    pool = server.ctx.pool
    channel, api_key = await _channel_and_key(pool)
    await _post(server, channel.id, peer("messages/topic_message", update_id=7))
    row = await pool.fetchrow("SELECT conversation_id, extra, reply_to_external_id FROM messages")
    assert row["extra"]["thread_id"] == "4"
    assert row["reply_to_external_id"] is None  # the topic's opening notice is no reply
    await _reply(server, api_key, row["conversation_id"], "Answer in the topic")
    bot = fake.bots[TOKEN]
    await wait_until(lambda: bot.sent)
    (call,) = bot.calls_to("sendMessage")
    assert (call.params["chat_id"], call.params["message_thread_id"]) == (-1001847508954, 4)


async def test_a_button_press_is_an_interactive_message_answered_once_after_commit(server, fake):
    pool = server.ctx.pool
    channel = await make_telegram_channel(pool)
    press = fixture("callback_query")
    assert (await _post(server, channel.id, press))["status"] == "processed"
    bot = fake.bots[TOKEN]
    await wait_until(lambda: bot.calls_to("answerCallbackQuery"))
    row = await pool.fetchrow("SELECT type, text, extra FROM messages")
    assert (row["type"], row["text"]) == ("interactive", "Yes")
    assert row["extra"]["reply"] == {"kind": "callback_query", "id": "csat:yes:1842", "title": "Yes"}
    # Redelivered: stored once, not answered again. A second press is answered.
    assert (await _post(server, channel.id, press))["status"] == "duplicate"
    second = copy.deepcopy(press)
    second["update_id"] += 1
    second["callback_query"].update({"id": "2241742958113270999", "data": "csat:no:1842"})
    await _post(server, channel.id, second)
    await wait_until(lambda: len(bot.calls_to("answerCallbackQuery")) == 2)
    assert [c.params["callback_query_id"] for c in bot.calls_to("answerCallbackQuery")] == [
        "2241742958113270611", "2241742958113270999"]


async def test_a_stalled_bot_api_does_not_hold_the_button_press_webhook(server, fake):
    pool = server.ctx.pool
    channel = await make_telegram_channel(pool)
    bot = fake.bots[TOKEN]
    release = bot.held["answerCallbackQuery"] = asyncio.Event()
    try:
        # Answered while the Bot API has not answered us: ingest does not wait for it.
        assert (await _post(server, channel.id, fixture("callback_query")))["status"] == "processed"
        await wait_until(lambda: bot.calls_to("answerCallbackQuery"))
        # The press is stored while its answer is still pending.
        assert await pool.fetchval("SELECT type FROM messages") == "interactive"
    finally:
        release.set()


async def test_a_failing_answer_does_not_fail_the_button_press(server, fake):
    pool = server.ctx.pool
    channel = await make_telegram_channel(pool)
    bot = fake.bots[TOKEN]
    bot.fail_next("answerCallbackQuery", BAD_GATEWAY)
    assert (await _post(server, channel.id, fixture("callback_query")))["status"] == "processed"
    await wait_until(lambda: bot.calls_to("answerCallbackQuery"))
    assert await pool.fetchval("SELECT type FROM messages") == "interactive"


async def test_shapes_older_than_ptb_accepts_are_kept_from_their_core_fields(server):
    pool = server.ctx.pool
    channel = await make_telegram_channel(pool)
    document = fixture("document")
    del document["message"]["document"]["file_unique_id"]
    audio = fixture("voice")
    audio["update_id"] += 1000
    audio["message"]["message_id"] += 1000
    audio["message"]["audio"] = {k: v for k, v in audio["message"].pop("voice").items() if k != "file_unique_id"}
    blocked = fixture("my_chat_member_blocked")
    del blocked["my_chat_member"]["new_chat_member"]["until_date"]
    # teloxide's unique gift lacks a field PTB requires.
    gift = peer("messages/unique_gift_info", update_id=1)
    for update in (document, audio, blocked, gift):
        assert (await _post(server, channel.id, update))["status"] == "processed"
    kept = await pool.fetchrow("SELECT type, extra FROM messages WHERE external_id = '-1002236736395:27'")
    assert kept["type"] == "unsupported" and kept["extra"]["lenient"] is True
    rows = {r["type"]: r for r in await pool.fetch(
        """SELECT m.type, m.text, f.provider_id FROM messages m
           JOIN message_media mm ON mm.message_id = m.id JOIN media_files f ON f.id = mm.media_id""")}
    assert rows["document"]["text"] == "Full statement"
    assert rows["document"]["provider_id"] == document["message"]["document"]["file_id"]
    assert rows["audio"]["provider_id"] == audio["message"]["audio"]["file_id"]
    reason = await pool.fetchval("SELECT unreachable_reason FROM contact_identities WHERE external_id = '521937406'")
    assert reason == "the user blocked the bot"


async def test_a_shared_contact_reads_as_its_name_and_phone(server):
    pool = server.ctx.pool
    channel = await make_telegram_channel(pool)
    update = text_update(41, 521937406, 1900)
    del update["message"]["text"]
    update["message"]["contact"] = {"phone_number": "+972501234567", "first_name": "Noa", "last_name": "Levi",
                                    "user_id": 6150227391}
    await _post(server, channel.id, update)
    row = await pool.fetchrow("SELECT type, text FROM messages")
    assert (row["type"], row["text"]) == ("contacts", "Noa Levi (+972501234567)")

