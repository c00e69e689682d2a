"""Media download through getFile and the file URL of the fake Bot API, alone and through the media worker."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator

import pytest

from channels.telegram.client import FILE_SIZE_LIMIT, BotPool
from channels.telegram.fetcher import TelegramFetcher
from channels.telegram.parse import parse_update
from gateway import pipeline, telegram_runtime
from gateway.broker import InProcessBroker
from gateway.config import load_settings
from gateway.context import AppContext
from gateway.media_worker import MediaWorker, MediaWorkerConfig
from schema.media import MediaFetchError, MediaRefused, MediaTooLarge
from tests.fakes.bot_api import FakeBot, FakeBotApi
from tests.telegram.helpers import TOKEN, fixture, make_telegram_channel

DOC_ID = "AgAQCAgIAAxkBAAIH0008WfKAwcT-iZ0-M32_GtQiGcVw"
PDF = b"%PDF-1.7 fake statement"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    api = FakeBotApi()
    api.add_bot(TOKEN)
    async with api.running():
        yield api


@pytest.fixture
async def fetcher(fake) -> AsyncIterator[TelegramFetcher]:
    bots = BotPool(fake.url)
    yield TelegramFetcher(bots)
    await bots.close()


def bot_of(fake: FakeBotApi) -> FakeBot:
    return fake.bots[TOKEN]


async def fetch(fetcher: TelegramFetcher, file_id: str | None, token: str | None = TOKEN):
    secrets = {"bot_token": token} if token else {}
    return await fetcher.fetch(provider_id=file_id, source_url=None, channel_config={}, channel_secrets=secrets)


async def test_a_file_is_fetched_with_get_file_then_downloaded(fake, fetcher):
    bot_of(fake).add_file(DOC_ID, PDF, file_path="documents/file_5.pdf")
    download = await fetch(fetcher, DOC_ID)
    assert download.content == PDF
    assert download.name == "file_5.pdf"
    assert [c.method for c in bot_of(fake).calls] == ["getMe", "getFile"]
    assert bot_of(fake).downloads == ["documents/file_5.pdf"]


async def test_a_file_over_20_mb_is_too_large_and_never_downloaded(fake, fetcher):
    bot_of(fake).add_file(DOC_ID, None, size=FILE_SIZE_LIMIT + 1)
    with pytest.raises(MediaTooLarge, match="too big"):
        await fetch(fetcher, DOC_ID)
    assert bot_of(fake).downloads == []


async def test_other_failures_are_retryable_fetch_errors(fake, fetcher):
    bot_of(fake).add_file("gone", None, size=10)  # getFile answers, the download 404s
    for file_id, token in (("unknown", TOKEN), ("gone", TOKEN), (DOC_ID, None), (None, TOKEN), (DOC_ID, "1:bad")):
        with pytest.raises(MediaFetchError) as caught:
            await fetch(fetcher, file_id, token)
        assert not isinstance(caught.value, MediaTooLarge)
        assert "1:bad" not in str(caught.value)


async def test_the_media_worker_stores_telegram_files_and_records_oversized_ones(db_url, pool, fake, tmp_path):
    bot_of(fake).add_file(DOC_ID, PDF)
    bot_of(fake).add_file("AgACCAgIAAxkBAAIH0004WfApN9zDQJT-E_wOPK-1E08w", None, size=FILE_SIZE_LIMIT * 2)
    ctx = AppContext(settings=load_settings(database_url=db_url, telegram_api_base=fake.url,
                                            gateway_media_dir=tmp_path), pool=pool, broker=InProcessBroker())
    telegram_runtime.install(ctx)
    channel = await make_telegram_channel(pool, mode="polling")
    try:
        for name in ("document", "photo_with_caption"):
            update = fixture(name)
            await pipeline.ingest(ctx, channel=channel, payload=json.dumps(update),
                                  dedup_key=str(update["update_id"]), parsed=parse_update(update))
        worker = MediaWorker(ctx, MediaWorkerConfig(retry_base=0.01))
        while await worker.run_once():
            pass
    finally:
        await ctx.extras["telegram_bots"].close()
    rows = {r["provider_id"]: r for r in await pool.fetch("SELECT * FROM media_files")}
    doc = rows[DOC_ID]
    assert (doc["status"], doc["sha256"], doc["mime_type"]) == (
        "stored", hashlib.sha256(PDF).hexdigest(), "application/pdf")
    photo = rows["AgACCAgIAAxkBAAIH0004WfApN9zDQJT-E_wOPK-1E08w"]
    assert (photo["status"], photo["attempts"]) == ("too_large", 1)
    assert "too big" in photo["error"]


LOCAL_PATHS = ["/etc/hostname", "../../../../../../etc/hostname", "/proc/self/environ", "documents/../../x",
               "file:///etc/hostname", "documents//x.pdf", "./documents/x.pdf", "documents/a\\..\\b"]


@pytest.mark.parametrize("file_path", LOCAL_PATHS)
async def test_a_file_path_that_is_not_a_relative_bot_api_path_is_refused_and_nothing_is_read(
    fake, fetcher, file_path
):
    bot_of(fake).add_file(DOC_ID, b"served over HTTP", file_path=file_path)
    with pytest.raises(MediaRefused, match="not a relative path"):
        await fetch(fetcher, DOC_ID)
    assert bot_of(fake).downloads == []


async def test_a_relative_path_naming_a_local_file_is_still_downloaded_over_http(fake, fetcher):
    # "pyproject.toml" exists in the test's working directory: python-telegram-bot would read it from disk.
    bot_of(fake).add_file(DOC_ID, b"the Bot API's bytes", file_path="pyproject.toml")
    download = await fetch(fetcher, DOC_ID)
    assert download.content == b"the Bot API's bytes"
    assert bot_of(fake).downloads == ["pyproject.toml"]


async def test_the_media_worker_fails_a_local_file_path_at_once_with_the_reason(db_url, pool, fake, tmp_path):
    bot_of(fake).add_file(DOC_ID, None, file_path="/etc/hostname")
    ctx = AppContext(settings=load_settings(database_url=db_url, telegram_api_base=fake.url,
                                            gateway_media_dir=tmp_path), pool=pool, broker=InProcessBroker())
    telegram_runtime.install(ctx)
    channel = await make_telegram_channel(pool, mode="polling")
    try:
        update = fixture("document")
        await pipeline.ingest(ctx, channel=channel, payload=json.dumps(update),
                              dedup_key=str(update["update_id"]), parsed=parse_update(update))
        worker = MediaWorker(ctx, MediaWorkerConfig(retry_base=0.01))
        while await worker.run_once():
            pass
    finally:
        await ctx.extras["telegram_bots"].close()
    row = await pool.fetchrow("SELECT status, attempts, error, storage_path FROM media_files WHERE provider_id = $1",
                              DOC_ID)
    assert (row["status"], row["attempts"], row["storage_path"]) == ("failed", 1, None)
    assert "not a relative path" in row["error"] and "/etc/hostname" in row["error"]
    assert list(tmp_path.rglob("*")) == []
