"""A running gateway whose account has something behind every route: the security suite's world
(a channel of each type, a conversation) plus a media file, an image message, a failed reply with
its reason, a reaction, a recorded call with events and an agent key."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from tests.security.world import World, running_world

PNG = b"\x89PNG\r\n\x1a\n a tiny picture"


@dataclass
class Populated:
    world: World
    media_id: int
    image_message_id: int
    failed_message_id: int
    call_id: int
    contact_id: int
    inbound_id: int


async def _store_media(pool: asyncpg.Pool, media_dir: Path, account_id: int, channel_id: int, content: bytes,
                       mime_type: str, name: str) -> int:
    digest = hashlib.sha256(content).hexdigest()
    (media_dir / digest[:2]).mkdir(parents=True, exist_ok=True)
    (media_dir / digest[:2] / digest).write_bytes(content)
    media_id: int = await pool.fetchval(
        """INSERT INTO media_files (account_id, channel_id, mime_type, name, size, sha256, storage_path, status)
           VALUES ($1, $2, $3, $4, $5, $6, $7, 'stored') RETURNING id""",
        account_id, channel_id, mime_type, name, len(content), digest, f"{digest[:2]}/{digest}")
    return media_id


@contextlib.asynccontextmanager
async def populated_world(db_url: str, pool: asyncpg.Pool, media_dir: Path, **settings: Any
                          ) -> AsyncIterator[Populated]:
    async with running_world(db_url, pool, gateway_media_dir=media_dir, **settings) as w:
        # A real signed webhook, so /api/v1/inbound has a payload as received.
        body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
            "field": "messages", "value": {
                "messaging_product": "whatsapp", "metadata": {"phone_number_id": "1001"},
                "contacts": [{"profile": {"name": "Ana"}, "wa_id": "4915100000002"}],
                "messages": [{"from": "4915100000002", "id": "wamid.openapi.1", "timestamp": "1767225600",
                              "type": "text", "text": {"body": "hola"}}]}}]}]}).encode()
        r = await w.request("POST", f"/webhooks/whatsapp/{w.whatsapp_channel}", body=body,
                            headers=w.whatsapp_headers(body))
        assert r.status_code == 200, r.text
        inbound_id = r.json()["inbound_event_id"]
        conv = w.conversation_id
        contact_id = await pool.fetchval("SELECT contact_id FROM conversations WHERE id = $1", conv)
        media_id = await _store_media(pool, media_dir, w.account_id, w.whatsapp_channel, PNG, "image/png", "a.png")
        image_id = await pool.fetchval(
            """INSERT INTO messages (account_id, conversation_id, channel_id, direction, type, text, status,
                                     external_id, sender, reactions, extra)
               VALUES ($1, $2, $3, 'inbound', 'image', 'look', 'received', 'wamid.openapi.img', $4, $5, $6)
               RETURNING id""",
            w.account_id, conv, w.whatsapp_channel, {"id": "4915100000001", "name": "Lena"},
            [{"emoji": "👍", "from": "4915100000001"}], {"caption": "look"})
        await pool.execute("INSERT INTO message_media (message_id, media_id, position) VALUES ($1, $2, 0)",
                           image_id, media_id)
        failed_id = await pool.fetchval(
            """INSERT INTO messages (account_id, conversation_id, channel_id, direction, type, text, status,
                                     author, error_code, error_message, failed_at, reply_to_id)
               VALUES ($1, $2, $3, 'outbound', 'text', 'hello?', 'failed', 'agent', '131047',
                       'Re-engagement message', now(), $4) RETURNING id""",
            w.account_id, conv, w.whatsapp_channel, image_id)
        recording = await _store_media(pool, media_dir, w.account_id, w.asterisk_channel, b"RIFF....WAVE",
                                       "audio/wav", "call.wav")
        call_id = await pool.fetchval(
            """INSERT INTO calls (account_id, channel_id, conversation_id, contact_id, direction, from_number,
                                  to_number, status, disposition, agent, external_id, started_at, answered_at,
                                  ended_at, duration, billsec, hangup_cause, recording_media_id)
               VALUES ($1, $2, $3, $4, 'inbound', '+4915100000001', '100', 'ended', 'answered', '1001',
                       '1741947613.212', now() - interval '3 minutes', now() - interval '150 seconds', now(),
                       180, 150, 'Normal Clearing', $5) RETURNING id""",
            w.account_id, w.asterisk_channel, conv, contact_id, recording)
        await pool.execute(
            """INSERT INTO call_events (account_id, call_id, type, data, occurred_at, dedup_key)
               VALUES ($1, $2, 'answered', $3, now(), 'a1')""",
            w.account_id, call_id, {"agent": "1001"})
        yield Populated(w, media_id, image_id, failed_id, call_id, contact_id, inbound_id)
