"""Test data for Telegram: channels inserted through SQL, fixtures, and row snapshots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inbox.accounts import create_account
from inbox.channels import ChannelRow, get_channel_any_account
from tests.sealed import seal

FIXTURES = Path(__file__).parent.parent / "fixtures" / "telegram"
TOKEN = "7012345678:AAFakeTokenForTests_0123456789abcdefgh"
SECRET = "tg_whk_Q3p9sV2x-7LmN0"
BOT_ID = 7012345678

# Every update fixture, in update_id order (the order Telegram delivers them).
UPDATE_FIXTURES = sorted(
    (p.stem for p in FIXTURES.glob("*.json")),
    key=lambda name: json.loads((FIXTURES / f"{name}.json").read_text())["update_id"],
)
# What the files stored by the fake serve for the media fixtures.
MEDIA_FILES = {
    "AgACCAgIAAxkBAAIH0004WfApN9zDQJT-E_wOPK-1E08w": b"\xff\xd8\xff\xe0 fake jpeg",
    "AgADCAgIAAxkBAAIH0007WflVGadekiR8W6JBjJIC0aOA": b"OggS fake voice",
    "AgAQCAgIAAxkBAAIH0008WfKAwcT-iZ0-M32_GtQiGcVw": b"%PDF-1.7 fake statement",
}


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def fixture_text(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text()


def text_update(update_id: int, chat_id: int, message_id: int, text: str = "hello",
                chat_type: str = "private") -> dict[str, Any]:
    chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
    chat.update({"first_name": f"User {chat_id}"} if chat_type == "private" else {"title": f"Group {chat_id}"})
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "from": {"id": abs(chat_id), "is_bot": False, "first_name": f"User {chat_id}"},
            "chat": chat,
            "date": 1741953000 + update_id % 1000,
            "text": text,
        },
    }


async def make_telegram_channel(pool, account_id: int | None = None, *, mode: str = "webhook",
                                public_url: str | None = None, poll_timeout: int = 1, token: str = TOKEN,
                                secret: str | None = SECRET, provider_key: str | None = str(BOT_ID)) -> ChannelRow:
    if account_id is None:
        account_id, _ = await create_account(pool, "acme")
    config: dict[str, Any] = {"mode": mode, "poll_timeout": poll_timeout}
    if public_url is not None:
        config["public_url"] = public_url
    secrets: dict[str, Any] = {"bot_token": token}
    if secret is not None:
        secrets["webhook_secret"] = secret
    channel_id = await pool.fetchval(
        """INSERT INTO channels (account_id, type, name, config, secrets_enc, provider_key)
           VALUES ($1, 'telegram', 'support bot', $2, $3, $4) RETURNING id""",
        account_id, config, seal(secrets), provider_key,
    )
    row = await get_channel_any_account(pool, channel_id)
    assert row is not None
    return row


async def count(pool, sql: str, *args: Any) -> int:
    value = await pool.fetchval(sql, *args)
    return int(value)


async def snapshot(pool, channel_id: int) -> dict[str, Any]:
    """What a channel's traffic left in the database, free of ids and clock times."""
    account_id = await pool.fetchval("SELECT account_id FROM channels WHERE id = $1", channel_id)
    messages = await pool.fetch(
        """SELECT m.external_id, m.type, m.text, m.direction, m.status, m.sender, m.reply_to_external_id,
                  m.edit_history, m.created_at, c.name AS contact, c.is_group,
                  (SELECT array_agg(f.provider_id ORDER BY mm.position) FROM message_media mm
                     JOIN media_files f ON f.id = mm.media_id WHERE mm.message_id = m.id) AS media
           FROM messages m JOIN conversations v ON v.id = m.conversation_id JOIN contacts c ON c.id = v.contact_id
           WHERE m.channel_id = $1 ORDER BY m.external_id""",
        channel_id,
    )
    identities = await pool.fetch(
        """SELECT i.external_id, i.unreachable_reason, i.unreachable_at IS NOT NULL AS unreachable
           FROM contact_identities i WHERE i.channel_type = 'telegram' AND i.account_id = $1
           ORDER BY i.external_id""",
        account_id,
    )
    inbound = await pool.fetch(
        "SELECT dedup_key, status FROM inbound_events WHERE channel_id = $1 ORDER BY dedup_key", channel_id
    )
    conversations = await count(pool, "SELECT count(*) FROM conversations WHERE channel_id = $1", channel_id)
    return {
        "messages": [_message_row(r) for r in messages],
        "identities": [dict(r) for r in identities],
        "inbound": [dict(r) for r in inbound],
        "conversations": conversations,
    }


def _message_row(r: Any) -> dict[str, Any]:
    row = dict(r)
    # Edit history entries carry the time of the edit; keep only the texts.
    row["edit_history"] = [e.get("text") for e in row["edit_history"]]
    if row["external_id"].split(":")[1].startswith("cb"):
        del row["created_at"]  # button presses carry no date: they are dated on receipt
    return row


def assert_fixture_rows(rows: dict[str, Any]) -> None:
    """The rows every update fixture (UPDATE_FIXTURES) must leave, however it arrived."""
    messages = {m["external_id"]: m for m in rows["messages"]}
    assert set(messages) == {
        "521937406:1842", "521937406:1843", "521937406:1846", "521937406:1847", "521937406:1848",
        "-1002143658709:90211", "521937406:cb2241742958113270611",
    }
    first = messages["521937406:1842"]
    assert first["text"] == "Hi, I was charged twice for order #A-1029 (card ending 4417)"
    assert first["edit_history"] == ["Hi, I was charged twice for order #A-1029"]
    assert (first["contact"], first["sender"], first["direction"]) == ("Maya Cohen", None, "inbound")
    photo = messages["521937406:1843"]
    assert (photo["type"], photo["text"]) == ("image", "Bank statement showing both charges")
    assert photo["media"] == ["AgACCAgIAAxkBAAIH0004WfApN9zDQJT-E_wOPK-1E08w"]
    assert messages["521937406:1846"]["reply_to_external_id"] == "521937406:1845"
    assert messages["521937406:1847"]["type"] == "audio"
    assert messages["521937406:1847"]["media"] == ["AgADCAgIAAxkBAAIH0007WflVGadekiR8W6JBjJIC0aOA"]
    assert messages["521937406:1848"]["media"] == ["AgAQCAgIAAxkBAAIH0008WfKAwcT-iZ0-M32_GtQiGcVw"]
    group = messages["-1002143658709:90211"]
    assert (group["contact"], group["is_group"]) == ("Acme Wholesale Partners", True)
    assert group["sender"] == {"external_id": "6150227391", "name": "Kai"}
    button = messages["521937406:cb2241742958113270611"]
    assert (button["type"], button["text"]) == ("interactive", "Yes")
    assert rows["conversations"] == 2
    maya = next(i for i in rows["identities"] if i["external_id"] == "521937406")
    assert (maya["unreachable"], maya["unreachable_reason"]) == (True, "the user blocked the bot")
    assert [r["status"] for r in rows["inbound"]] == ["processed"] * len(UPDATE_FIXTURES)
