from __future__ import annotations

import base64
import hashlib

import pytest

from gateway.broker import InProcessBroker
from gateway.config import load_settings
from gateway.context import AppContext
from gateway.media_worker import MediaWorker, MediaWorkerConfig
from inbox.accounts import create_account
from schema.enums import ChannelType
from schema.media import MediaDownload
from tests.fakes.graph_api import running_graph_api
from tests.server import run_server
from tests.whatsapp.helpers import ACCESS_TOKEN, PHONE_NUMBER_ID, eventually, make_whatsapp_channel, post_signed

FAST = MediaWorkerConfig(concurrency=1, poll_interval=0.05, retry_base=0.05, retry_cap=0.2, max_attempts=3)
PHOTO = b"\xff\xd8\xff\xe0 a photo of a damaged parcel"


def image_body(media_id: str, content: bytes, *, wamid: str = "wamid.IMG1") -> dict:
    digest = base64.b64encode(hashlib.sha256(content).digest()).decode()
    return {"object": "whatsapp_business_account", "entry": [{"id": "209876543210987", "changes": [{
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550109876", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "Lena Fischer"}, "wa_id": "4915112345678"}],
            "messages": [{"from": "4915112345678", "id": wamid, "timestamp": "1741952031", "type": "image",
                          "image": {"caption": "Foto", "mime_type": "image/jpeg", "sha256": digest,
                                    "id": media_id}}],
        }}]}]}


class StaticFetcher:
    """A media fetcher of another channel type: the worker is not WhatsApp's alone."""

    def __init__(self, content: bytes) -> None:
        self.content = content
        self.calls: list[str | None] = []

    async def fetch(self, *, provider_id, source_url, channel_config, channel_secrets) -> MediaDownload:
        self.calls.append(provider_id)
        return MediaDownload(content=self.content, mime_type="audio/ogg")


@pytest.fixture
async def graph():
    async with running_graph_api({PHONE_NUMBER_ID: ACCESS_TOKEN}) as fake:
        yield fake


@pytest.fixture
async def server(db_url, graph, tmp_path):
    async with run_server(db_url, whatsapp_api_base=graph.base_url, gateway_media_dir=tmp_path / "media",
                          extras={"media_worker_config": FAST}) as srv:
        yield srv


async def _media_row(pool, status: str | None = None):
    row = await pool.fetchrow("SELECT * FROM media_files ORDER BY id LIMIT 1")
    if row is not None and (status is None or row["status"] == status):
        return row
    return None


async def test_a_wrong_sha256_is_rejected_and_retried_and_the_right_file_is_served_to_its_owner_only(
        server, graph, tmp_path):
    pool = server.ctx.pool
    channel = await make_whatsapp_channel(pool)
    graph.add_media("m-1", b"not the announced bytes")
    async with server.client() as http:
        assert (await post_signed(http, channel.channel_id, image_body("m-1", PHOTO))).status_code == 200
    # The message is committed whatever becomes of its media.
    assert await pool.fetchval("SELECT text FROM messages WHERE external_id = 'wamid.IMG1'") == "Foto"

    async def mismatched():
        row = await _media_row(pool, "pending")
        return row if row and row["error"] and "sha256 mismatch" in row["error"] else None

    rejected = await eventually(mismatched)
    assert rejected["storage_path"] is None

    graph.add_media("m-1", PHOTO)  # the provider serves the right bytes on a later attempt
    stored = await eventually(lambda: _media_row(pool, "stored"))
    digest = hashlib.sha256(PHOTO).hexdigest()
    assert stored["sha256"] == digest == stored["expected_sha256"]
    assert stored["size"] == len(PHOTO) and stored["mime_type"] == "image/jpeg"
    assert stored["attempts"] >= 2 and stored["error"] is None
    assert (tmp_path / "media" / stored["storage_path"]).read_bytes() == PHOTO
    assert digest in stored["storage_path"]
    # Agents learn about it: the message is logged as updated with its media stored.
    updated = await pool.fetchval(
        "SELECT data FROM events WHERE name = 'message.updated' ORDER BY seq DESC LIMIT 1")
    assert updated["media"][0]["sha256"] == digest and updated["media"][0]["status"] == "stored"

    _, stranger_key = await create_account(pool, "someone else")
    async with server.client(channel.api_key) as owner, server.client(stranger_key) as stranger, \
            server.client() as anonymous:
        served = await owner.get(f"/api/v1/media/{stored['id']}")
        assert served.status_code == 200
        assert served.content == PHOTO
        assert served.headers["content-type"] == "image/jpeg"
        assert (await stranger.get(f"/api/v1/media/{stored['id']}")).status_code == 404
        assert (await anonymous.get(f"/api/v1/media/{stored['id']}")).status_code == 401
        assert (await owner.get("/api/v1/media/987654")).status_code == 404
        assert (await owner.get("/api/v1/media/abc")).status_code == 404


async def test_a_download_that_never_matches_fails_after_the_last_attempt_and_is_not_served(server, graph):
    pool = server.ctx.pool
    channel = await make_whatsapp_channel(pool)
    graph.add_media("m-2", b"always the wrong bytes")
    async with server.client() as http:
        await post_signed(http, channel.channel_id, image_body("m-2", PHOTO))
    failed = await eventually(lambda: _media_row(pool, "failed"))
    assert failed["attempts"] == FAST.max_attempts
    assert "sha256 mismatch" in failed["error"]
    assert graph.downloads.count("m-2") == FAST.max_attempts
    async with server.client(channel.api_key) as owner:
        assert (await owner.get(f"/api/v1/media/{failed['id']}")).status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1


async def test_media_over_the_channels_limit_is_too_large_at_once(server, graph):
    pool = server.ctx.pool
    channel = await make_whatsapp_channel(pool)
    await pool.execute("UPDATE channels SET config = config || '{\"max_media_bytes\": 8}' WHERE id = $1",
                       channel.channel_id)
    graph.add_media("m-3", PHOTO)
    async with server.client() as http:
        await post_signed(http, channel.channel_id, image_body("m-3", PHOTO))
    too_large = await eventually(lambda: _media_row(pool, "too_large"))
    assert too_large["attempts"] == 1 and "limit" in too_large["error"]
    assert graph.downloads == []


def _worker(db_url: str, pool, tmp_path, fetchers) -> MediaWorker:
    """The worker alone, over a real database, with exactly the fetchers given."""
    settings = load_settings(database_url=db_url, gateway_media_dir=tmp_path)
    ctx = AppContext(settings=settings, pool=pool, broker=InProcessBroker(), fetchers=fetchers)
    return MediaWorker(ctx, FAST)


async def _drain(worker: MediaWorker) -> None:
    while await worker.run_once():
        pass


async def test_the_worker_downloads_media_of_any_channel_type_through_its_fetcher(db_url, pool, tmp_path):
    fetcher = StaticFetcher(b"OggS voice")
    worker = _worker(db_url, pool, tmp_path, {ChannelType.TELEGRAM: fetcher})
    account_id, _ = await create_account(pool, "bots")
    channel_id = await pool.fetchval(
        "INSERT INTO channels (account_id, type, name) VALUES ($1, 'telegram', 'bot') RETURNING id", account_id)
    await pool.execute(
        "INSERT INTO media_files (account_id, channel_id, provider_id) VALUES ($1, $2, 'file-1')",
        account_id, channel_id)
    await _drain(worker)
    stored = await _media_row(pool, "stored")
    assert stored["sha256"] == hashlib.sha256(b"OggS voice").hexdigest()
    assert stored["mime_type"] == "audio/ogg"
    assert (tmp_path / stored["storage_path"]).read_bytes() == b"OggS voice"
    assert fetcher.calls == ["file-1"]


async def test_a_stored_call_recording_updates_its_call(db_url, pool, tmp_path):
    worker = _worker(db_url, pool, tmp_path, {ChannelType.ASTERISK: StaticFetcher(b"RIFF recording")})
    account_id, _ = await create_account(pool, "phones")
    channel_id = await pool.fetchval(
        "INSERT INTO channels (account_id, type, name) VALUES ($1, 'asterisk', 'pbx') RETURNING id", account_id)
    media_id = await pool.fetchval(
        """INSERT INTO media_files (account_id, channel_id, source_url, mime_type, name)
           VALUES ($1, $2, '/var/spool/asterisk/monitor/call.wav', 'audio/wav', 'call.wav') RETURNING id""",
        account_id, channel_id)
    await pool.execute(
        """INSERT INTO calls (account_id, channel_id, direction, status, external_id, recording_media_id)
           VALUES ($1, $2, 'inbound', 'ended', '1741947613.212', $3)""", account_id, channel_id, media_id)
    await _drain(worker)
    call = await pool.fetchval("SELECT data FROM events WHERE name = 'call.updated' ORDER BY seq DESC LIMIT 1")
    assert call["recording"]["status"] == "stored"
    assert call["recording"]["sha256"] == hashlib.sha256(b"RIFF recording").hexdigest()


async def test_a_channel_type_without_a_fetcher_fails_after_its_attempts_without_blocking_others(
        db_url, pool, tmp_path):
    worker = _worker(db_url, pool, tmp_path, {})
    account_id, _ = await create_account(pool, "nobody")
    channel_id = await pool.fetchval(
        "INSERT INTO channels (account_id, type, name) VALUES ($1, 'telegram', 'bot') RETURNING id", account_id)
    await pool.execute("INSERT INTO media_files (account_id, channel_id, provider_id) VALUES ($1, $2, 'f')",
                       account_id, channel_id)
    for _ in range(FAST.max_attempts):
        await pool.execute("UPDATE media_files SET next_attempt_at = now()")  # skip the backoff wait
        assert await worker.run_once()
    failed = await _media_row(pool, "failed")
    assert failed["attempts"] == FAST.max_attempts and "no media fetcher" in failed["error"]
