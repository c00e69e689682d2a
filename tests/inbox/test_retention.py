"""Retention and redaction over real rows inserted with SQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from inbox.retention import RetentionPolicy, parse_policy, run_retention

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


class World:
    """Builds one account's rows with chosen ages."""

    def __init__(self, pool, account_id: int, channel_id: int, phone_channel_id: int) -> None:
        self.pool = pool
        self.account_id = account_id
        self.channel_id = channel_id
        self.phone_channel_id = phone_channel_id
        self._n = 0

    @classmethod
    async def create(cls, pool, name: str = "acme", retention: dict | None = None) -> World:
        account_id = await pool.fetchval(
            "INSERT INTO accounts (name, retention) VALUES ($1, $2) RETURNING id", name, retention or {}
        )
        channel_id = await pool.fetchval(
            "INSERT INTO channels (account_id, type, name) VALUES ($1, 'whatsapp', 'wa') RETURNING id", account_id
        )
        phone_id = await pool.fetchval(
            "INSERT INTO channels (account_id, type, name) VALUES ($1, 'asterisk', 'pbx') RETURNING id", account_id
        )
        return cls(pool, account_id, channel_id, phone_id)

    def _next(self) -> int:
        self._n += 1
        return self._n

    async def contact(self, age: float, phone: str | None = None) -> int:
        n = self._next()
        phone = phone or f"+1555000{n:04d}"
        contact_id = await self.pool.fetchval(
            "INSERT INTO contacts (account_id, name, phone, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) "
            "RETURNING id",
            self.account_id, f"Person {n}", phone, days_ago(age),
        )
        await self.pool.execute(
            "INSERT INTO contact_identities (account_id, contact_id, channel_type, external_id, display, created_at) "
            "VALUES ($1, $2, 'whatsapp', $3, $4, $5)",
            self.account_id, contact_id, phone.lstrip("+"), f"Person {n}", days_ago(age),
        )
        return contact_id

    async def conversation(self, contact_id: int, age: float, status: str = "resolved") -> int:
        conversation_id: int = await self.pool.fetchval(
            "INSERT INTO conversations (account_id, channel_id, contact_id, status, last_activity_at, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            self.account_id, self.channel_id, contact_id, status, days_ago(age),
        )
        return conversation_id

    async def message(self, conversation_id: int, age: float, *, text: str = "hello", reply_to: int | None = None,
                      reactions: list | None = None) -> int:
        n = self._next()
        message_id: int = await self.pool.fetchval(
            """INSERT INTO messages (account_id, conversation_id, channel_id, direction, type, text, status,
                   external_id, reply_to_id, reactions, raw, extra, sender, created_at)
               VALUES ($1, $2, $3, 'inbound', 'text', $4, 'received', $5, $6, $7, $8, $9, $10, $11) RETURNING id""",
            self.account_id, conversation_id, self.channel_id, text, f"wamid.{n}", reply_to, reactions or [],
            {"from": "15550001", "text": {"body": text}}, {"location": {"name": "home"}},
            {"name": "Member", "external_id": "15550009"}, days_ago(age),
        )
        await self.pool.execute("UPDATE conversations SET last_activity_at = greatest(last_activity_at, $2) "
                                "WHERE id = $1", conversation_id, days_ago(age))
        return message_id

    async def media(self, age: float, *, message_id: int | None = None, storage_path: str | None = None) -> int:
        media_id: int = await self.pool.fetchval(
            "INSERT INTO media_files (account_id, channel_id, status, storage_path, created_at) "
            "VALUES ($1, $2, 'stored', $3, $4) RETURNING id",
            self.account_id, self.channel_id, storage_path, days_ago(age),
        )
        if message_id is not None:
            await self.pool.execute("INSERT INTO message_media (message_id, media_id) VALUES ($1, $2)",
                                    message_id, media_id)
        return media_id

    async def call(self, age: float, *, contact_id: int | None = None, conversation_id: int | None = None,
                   recording: int | None = None) -> int:
        n = self._next()
        call_id: int = await self.pool.fetchval(
            """INSERT INTO calls (account_id, channel_id, conversation_id, contact_id, direction, from_number,
                   to_number, caller_name, status, disposition, external_id, started_at, created_at,
                   recording_media_id)
               VALUES ($1, $2, $3, $4, 'inbound', '+15551230000', '+15559870000', 'Caller', 'ended', 'answered',
                   $5, $6, $6, $7) RETURNING id""",
            self.account_id, self.phone_channel_id, conversation_id, contact_id, f"17000.{n}", days_ago(age),
            recording,
        )
        return call_id

    async def call_event(self, call_id: int, age: float) -> int:
        n = self._next()
        event_id: int = await self.pool.fetchval(
            "INSERT INTO call_events (account_id, call_id, type, data, occurred_at, dedup_key) "
            "VALUES ($1, $2, 'ringing', $3, $4, $5) RETURNING id",
            self.account_id, call_id, {"from_number": "+15551230000"}, days_ago(age), f"k{n}",
        )
        return event_id

    async def event(self, age: float) -> int:
        seq: int = await self.pool.fetchval(
            "UPDATE accounts SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq", self.account_id
        )
        await self.pool.execute(
            "INSERT INTO events (account_id, seq, name, data, ts) VALUES ($1, $2, 'message.created', $3, $4)",
            self.account_id, seq, {"text": "hello"}, days_ago(age),
        )
        return seq

    async def inbound(self, age: float, status: str) -> int:
        n = self._next()
        inbound_id: int = await self.pool.fetchval(
            "INSERT INTO inbound_events (account_id, channel_id, dedup_key, status, payload, received_at) "
            "VALUES ($1, $2, $3, $4, '{\"body\": \"hi\"}', $5) RETURNING id",
            self.account_id, self.channel_id, f"d{n}", status, days_ago(age),
        )
        return inbound_id

    async def exists(self, table: str, id_: int, key: str = "id") -> bool:
        return bool(await self.pool.fetchval(
            f"SELECT count(*) FROM {table} WHERE account_id = $1 AND {key} = $2", self.account_id, id_
        ))


@pytest.fixture
async def world(pool):
    return await World.create(pool)


async def test_rows_older_than_the_default_limits_are_deleted_and_younger_ones_kept(world, pool, tmp_path):
    media_root = tmp_path / "media"
    media_root.mkdir()
    (media_root / "old.jpg").write_bytes(b"old")
    (media_root / "kept.jpg").write_bytes(b"kept")

    old_contact = await world.contact(age=900)
    old_conv = await world.conversation(old_contact, age=800)
    old_msg = await world.message(old_conv, age=800)
    old_media = await world.media(age=800, message_id=old_msg, storage_path="old.jpg")
    await pool.execute("INSERT INTO outbound_jobs (account_id, message_id, channel_id) VALUES ($1, $2, $3)",
                       world.account_id, old_msg, world.channel_id)

    live_contact = await world.contact(age=900)
    live_conv = await world.conversation(live_contact, age=800, status="open")
    stale_msg = await world.message(live_conv, age=731)
    reply = await world.message(live_conv, age=10, reply_to=stale_msg)
    kept_media = await world.media(age=10, message_id=reply, storage_path=str(media_root / "kept.jpg"))

    old_call = await world.call(age=740, contact_id=old_contact)
    old_call_event = await world.call_event(old_call, age=740)
    recent_call = await world.call(age=200, contact_id=live_contact, conversation_id=live_conv)
    stale_call_event = await world.call_event(recent_call, age=181)
    fresh_call_event = await world.call_event(recent_call, age=179)

    old_event = await world.event(age=731)
    new_event = await world.event(age=1)
    old_dead = await world.inbound(age=91, status="failed")
    new_dead = await world.inbound(age=89, status="failed")
    old_raw = await world.inbound(age=91, status="processed")

    report = await run_retention(pool, now=NOW, media_root=media_root)

    [account] = report.accounts
    assert account.error is None
    assert account.deleted == {
        "messages": 2, "calls": 1, "call_events": 1, "events": 1, "dead_letters": 1, "raw_payloads": 1,
        "pending_updates": 0, "conversations": 1, "contacts": 1, "media_files": 1,
    }
    assert account.redacted == {}
    assert not await world.exists("messages", old_msg)
    assert not await world.exists("messages", stale_msg)
    assert await pool.fetchval("SELECT reply_to_id FROM messages WHERE id = $1", reply) is None
    assert not await world.exists("media_files", old_media)
    assert await world.exists("media_files", kept_media)
    assert not (media_root / "old.jpg").exists() and (media_root / "kept.jpg").exists()
    assert report.files_removed == 1
    assert await pool.fetchval("SELECT count(*) FROM outbound_jobs") == 0
    assert not await world.exists("conversations", old_conv)
    assert await world.exists("conversations", live_conv)
    assert not await world.exists("contacts", old_contact)
    assert await world.exists("contacts", live_contact)
    assert not await world.exists("calls", old_call)
    assert not await world.exists("call_events", old_call_event)
    assert await world.exists("calls", recent_call)
    assert not await world.exists("call_events", stale_call_event)
    assert await world.exists("call_events", fresh_call_event)
    assert not await world.exists("events", old_event, key="seq")
    assert await world.exists("events", new_event, key="seq")
    assert not await world.exists("inbound_events", old_dead)
    assert await world.exists("inbound_events", new_dead)
    assert not await world.exists("inbound_events", old_raw)


async def test_a_dry_run_reports_exactly_what_the_real_run_then_does_and_changes_nothing(pool):
    world = await World.create(pool, retention={"redact_after_days": 30})
    old_contact = await world.contact(age=900)
    old_conv = await world.conversation(old_contact, age=800)
    old_msg = await world.message(old_conv, age=800)
    await world.media(age=800, message_id=old_msg)
    await world.call(age=800, contact_id=old_contact, recording=await world.media(age=800))
    idle_contact = await world.contact(age=100)
    idle_conv = await world.conversation(idle_contact, age=60)
    await world.message(idle_conv, age=60)
    await world.call(age=45, contact_id=idle_contact, conversation_id=idle_conv)
    busy_contact = await world.contact(age=100)
    busy_conv = await world.conversation(busy_contact, age=1, status="open")
    await world.message(busy_conv, age=40)
    await world.message(busy_conv, age=1)
    await world.event(age=40)
    await world.event(age=800)
    await world.inbound(age=40, status="processed")
    await world.inbound(age=100, status="failed")

    async def snapshot():
        tables = ["messages", "calls", "call_events", "events", "inbound_events", "conversations", "contacts",
                  "media_files", "contact_identities"]
        return {t: [dict(r) for r in await pool.fetch(f"SELECT * FROM {t} ORDER BY 1, 2")] for t in tables}

    before = await snapshot()
    dry = await run_retention(pool, now=NOW, dry_run=True)
    assert await snapshot() == before

    real = await run_retention(pool, now=NOW)

    assert dry.dry_run and not real.dry_run
    assert dry.accounts[0].deleted == real.accounts[0].deleted
    assert dry.accounts[0].redacted == real.accounts[0].redacted
    assert real.accounts[0].deleted["messages"] == 1
    assert real.accounts[0].redacted == {"messages": 2, "calls": 1, "call_events": 0, "contacts": 1}
    assert "would delete" in "\n".join(dry.lines()) and dry.lines()[-1] == "dry run: nothing was changed"


async def test_redaction_wipes_bodies_and_numbers_but_keeps_the_rows(pool):
    world = await World.create(pool, retention={"redact_after_days": 30})
    idle = await world.contact(age=100, phone="+15550001111")
    conv = await world.conversation(idle, age=40)
    old = await world.message(conv, age=40, text="my card is 4242",
                              reactions=[{"emoji": "👍", "from": "15550001111", "at": "x"}])
    call = await world.call(age=40, contact_id=idle, conversation_id=conv)
    call_event = await world.call_event(call, age=40)
    await pool.execute(
        """INSERT INTO call_originates (account_id, channel_id, call_id, originate_id, agent, to_number, status)
           VALUES ($1, $2, $3, 'gw-1', '1001', '+15559870000', 'accepted')""",
        world.account_id, world.phone_channel_id, call)
    active = await world.contact(age=100, phone="+15550002222")
    active_conv = await world.conversation(active, age=1, status="open")
    fresh = await world.message(active_conv, age=1, text="still here")
    await world.message(active_conv, age=40, text="older words")

    await run_retention(pool, now=NOW)

    m = await pool.fetchrow("SELECT * FROM messages WHERE id = $1", old)
    assert m is not None, "redaction keeps the row for counts"
    assert (m["text"], m["raw"], m["sender"], m["extra"], m["edit_history"]) == (None, None, None, {}, [])
    assert m["reactions"] == [{"emoji": "👍", "from": None, "at": "x"}]
    assert m["redacted_at"] is not None
    assert m["status"] == "received" and m["direction"] == "inbound"
    c = await pool.fetchrow("SELECT * FROM calls WHERE id = $1", call)
    assert (c["from_number"], c["to_number"], c["caller_name"]) == (None, None, None)
    assert c["disposition"] == "answered" and c["redacted_at"] is not None
    assert await pool.fetchval("SELECT data FROM call_events WHERE id = $1", call_event) == {}
    assert await pool.fetchval("SELECT to_number FROM call_originates WHERE call_id = $1", call) == "redacted"
    p = await pool.fetchrow("SELECT * FROM contacts WHERE id = $1", idle)
    assert (p["name"], p["phone"]) == (None, None) and p["redacted_at"] is not None
    ident = await pool.fetchrow("SELECT * FROM contact_identities WHERE contact_id = $1", idle)
    assert ident["display"] is None
    assert ident["external_id"] == f"redacted:{ident['id']}"
    assert "15550001111" not in json.dumps([dict(r) for r in await pool.fetch(
        "SELECT external_id, display FROM contact_identities")], default=str)

    assert await pool.fetchval("SELECT text FROM messages WHERE id = $1", fresh) == "still here"
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE text IS NULL") == 2
    a = await pool.fetchrow("SELECT * FROM contacts WHERE id = $1", active)
    assert a["phone"] == "+15550002222" and a["redacted_at"] is None


async def test_a_second_run_finds_nothing_left_to_do(pool):
    world = await World.create(pool, retention={"redact_after_days": 30})
    contact = await world.contact(age=900)
    conv = await world.conversation(contact, age=800)
    await world.message(conv, age=800)
    await world.message(await world.conversation(await world.contact(age=50), age=40), age=40)

    await run_retention(pool, now=NOW)
    again = await run_retention(pool, now=NOW)

    assert not any(again.accounts[0].deleted.values())
    assert not any(again.accounts[0].redacted.values())
    assert again.lines()[0] == f"account {world.account_id}: nothing to do"


async def test_null_keeps_rows_forever_and_each_account_follows_its_own_policy(pool):
    keeper = await World.create(pool, "keeper", retention={"messages_days": None, "calls_days": None})
    default = await World.create(pool, "default")
    kept = await keeper.message(await keeper.conversation(await keeper.contact(age=3000), age=3000), age=3000)
    kept_call = await keeper.call(age=3000)
    gone = await default.message(await default.conversation(await default.contact(age=3000), age=3000), age=3000)

    report = await run_retention(pool, now=NOW)

    assert await keeper.exists("messages", kept)
    assert await keeper.exists("calls", kept_call)
    assert not await default.exists("messages", gone)
    by_account = {a.account_id: a for a in report.accounts}
    assert by_account[keeper.account_id].deleted.get("messages", 0) == 0
    assert "conversations" not in by_account[keeper.account_id].deleted  # needs both limits
    assert by_account[default.account_id].deleted["messages"] == 1


async def test_an_invalid_policy_skips_that_account_only(pool):
    bad = await World.create(pool, "bad", retention={"messages_days": -3})
    good = await World.create(pool, "good")
    bad_msg = await bad.message(await bad.conversation(await bad.contact(age=3000), age=3000), age=3000)
    good_msg = await good.message(await good.conversation(await good.contact(age=3000), age=3000), age=3000)

    report = await run_retention(pool, now=NOW)

    by_account = {a.account_id: a for a in report.accounts}
    assert "messages_days" in (by_account[bad.account_id].error or "")
    assert await bad.exists("messages", bad_msg)
    assert not await good.exists("messages", good_msg)
    assert f"account {bad.account_id}: skipped: invalid retention policy messages_days" in "\n".join(report.lines())


async def test_media_files_outside_the_media_dir_are_never_removed(world, pool, tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    media_root = tmp_path / "media"
    media_root.mkdir()
    msg = await world.message(await world.conversation(await world.contact(age=900), age=800), age=800)
    await world.media(age=800, message_id=msg, storage_path="../precious.txt")

    report = await run_retention(pool, now=NOW, media_root=media_root)

    assert report.accounts[0].deleted["media_files"] == 1
    assert outside.read_text() == "keep me"
    assert report.files_removed == 0


def test_the_default_policy_matches_the_design():
    policy = parse_policy({})
    assert policy == RetentionPolicy()
    assert (policy.calls_days, policy.messages_days, policy.call_events_days, policy.dead_letters_days) == (
        730, 730, 180, 90)
    assert policy.redact_after_days is None
    assert parse_policy({"messages_days": 10, "unknown": 1}).messages_days == 10
    with pytest.raises(ValueError, match="calls_days"):
        parse_policy({"calls_days": "soon"})
