from __future__ import annotations

import hashlib

import pytest

from channels.whatsapp.client import GraphApiClient
from channels.whatsapp.fetcher import WhatsAppFetcher
from schema.media import MediaFetchError, MediaTooLarge
from tests.fakes.graph_api import running_graph_api

TOKEN = "EAAG-test-token"
SECRETS = {"access_token": TOKEN}


@pytest.fixture
async def graph():
    async with running_graph_api({"110987654321098": TOKEN}) as fake:
        yield fake


@pytest.fixture
async def client(graph):
    c = GraphApiClient(graph.base_url)
    yield c
    await c.close()


async def test_media_is_fetched_by_id_then_downloaded_with_the_token(graph, client):
    graph.add_media("1123581321345589", b"\xff\xd8jpeg bytes", "image/jpeg")
    info = await client.media_info(media_id="1123581321345589", access_token=TOKEN)
    assert info.sha256 == hashlib.sha256(b"\xff\xd8jpeg bytes").hexdigest()
    download = await WhatsAppFetcher(client).fetch(
        provider_id="1123581321345589", source_url=None, channel_config={}, channel_secrets=SECRETS)
    assert download.content == b"\xff\xd8jpeg bytes"
    assert download.mime_type == "image/jpeg"
    assert graph.media_gets == ["1123581321345589"] * 2 and graph.downloads == ["1123581321345589"]


async def test_media_over_the_limit_is_too_large_before_download(graph, client):
    graph.add_media("big", b"x" * 2048)
    with pytest.raises(MediaTooLarge):
        await WhatsAppFetcher(client, max_bytes=1024).fetch(
            provider_id="big", source_url=None, channel_config={}, channel_secrets=SECRETS)
    assert graph.downloads == []


async def test_unknown_media_or_a_wrong_token_is_a_retryable_fetch_error(graph, client):
    fetcher = WhatsAppFetcher(client)
    with pytest.raises(MediaFetchError) as unknown:
        await fetcher.fetch(provider_id="nope", source_url=None, channel_config={}, channel_secrets=SECRETS)
    assert not isinstance(unknown.value, MediaTooLarge)
    graph.add_media("m1", b"abc")
    with pytest.raises(MediaFetchError):
        await fetcher.fetch(provider_id="m1", source_url=None, channel_config={},
                            channel_secrets={"access_token": "wrong"})
