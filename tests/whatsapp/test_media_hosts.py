"""The WhatsApp access token goes only to allowed media hosts, whatever the metadata or a redirect says."""

from __future__ import annotations

import pytest

from channels.whatsapp.client import GraphApiClient
from channels.whatsapp.fetcher import WhatsAppFetcher
from channels.whatsapp.media_hosts import MediaHostPolicy, UntrustedMediaUrl
from schema.media import MediaRefused
from tests.fakes.graph_api import running_graph_api, running_header_recorder
from tests.server import run_server
from tests.whatsapp.helpers import ACCESS_TOKEN, PHONE_NUMBER_ID, eventually, make_whatsapp_channel, post_signed
from tests.whatsapp.test_media import FAST, PHOTO, image_body

API = "https://graph.facebook.com/v21.0"


@pytest.mark.parametrize("url", [
    "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1&ext=2&hash=x",
    "https://LOOKASIDE.fbsbx.com./whatsapp_business/attachments/?mid=1",
    "https://scontent.xx.fbsbx.com/v/t1/abc",
    "https://mmg.whatsapp.net/d/f/abc.enc",
    "https://graph.facebook.com/v21.0/download/1",  # WHATSAPP_API_BASE's own origin
])
def test_meta_media_hosts_and_the_api_base_are_allowed(url):
    MediaHostPolicy(API).check(url)


@pytest.mark.parametrize("url", [
    "https://attacker.example/steal",
    "http://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",  # the token in clear
    "https://lookaside.fbsbx.com:8443/x",
    "https://fbsbx.com.attacker.example/x",
    "https://attackerfbsbx.com/x",
    "https://lookaside.fbsbx.com@attacker.example/x",
    "https://whatsapp.net/x",  # only subdomains are listed
    "ftp://lookaside.fbsbx.com/x",
    "file:///etc/passwd",
    "/download/1",
    "https://[::1/x",
])
def test_any_other_url_is_refused(url):
    with pytest.raises(UntrustedMediaUrl):
        MediaHostPolicy(API).check(url)


def test_the_api_base_origin_includes_its_port_and_the_list_is_configurable():
    policy = MediaHostPolicy("http://127.0.0.1:8081/v21.0", "media.example.com, *.cdn.example.com")
    policy.check("http://127.0.0.1:8081/download/1")
    policy.check("https://media.example.com/x")
    policy.check("https://a.cdn.example.com/x")
    for url in ("http://127.0.0.1:8082/download/1", "https://lookaside.fbsbx.com/x", "http://media.example.com/x"):
        with pytest.raises(UntrustedMediaUrl):
            policy.check(url)


@pytest.fixture
async def graph():
    async with running_graph_api({PHONE_NUMBER_ID: ACCESS_TOKEN}) as fake:
        yield fake


@pytest.fixture
async def elsewhere():
    async with running_header_recorder() as recorder:
        yield recorder


async def _fetch(graph, media_id: str):
    client = GraphApiClient(graph.base_url)
    try:
        return await WhatsAppFetcher(client).fetch(
            provider_id=media_id, source_url=None, channel_config={}, channel_secrets={"access_token": ACCESS_TOKEN})
    finally:
        await client.close()


async def test_metadata_pointing_at_another_host_is_refused_and_that_host_receives_nothing(graph, elsewhere):
    graph.add_media("m-1", PHOTO)
    graph.media_urls["m-1"] = f"{elsewhere.url}/collect?mid=1"

    with pytest.raises(MediaRefused, match="not on WHATSAPP_MEDIA_HOSTS"):
        await _fetch(graph, "m-1")

    assert elsewhere.requests == []


async def test_a_redirect_to_another_host_does_not_carry_the_token_there(graph, elsewhere):
    graph.add_media("m-2", PHOTO)
    graph.media_urls["m-2"] = f"{graph.url}/redirect/m-2"
    graph.redirects["m-2"] = f"{elsewhere.url}/collect?mid=2"

    with pytest.raises(MediaRefused):
        await _fetch(graph, "m-2")

    assert elsewhere.requests == []


async def test_a_redirect_within_the_allowed_origin_is_followed(graph):
    graph.add_media("m-3", PHOTO)
    graph.media_urls["m-3"] = f"{graph.url}/redirect/m-3"
    graph.redirects["m-3"] = f"{graph.url}/download/m-3"

    download = await _fetch(graph, "m-3")

    assert download.content == PHOTO and graph.downloads == ["m-3"]


async def test_through_the_gateway_the_media_fails_at_once_with_the_reason_and_no_token_leaves(
        db_url, graph, elsewhere, tmp_path):
    graph.add_media("m-4", PHOTO)
    graph.media_urls["m-4"] = f"{elsewhere.url}/collect?mid=4"
    async with run_server(db_url, whatsapp_api_base=graph.base_url, gateway_media_dir=tmp_path / "media",
                          extras={"media_worker_config": FAST}) as server:
        pool = server.ctx.pool
        channel = await make_whatsapp_channel(pool)
        async with server.client() as http:
            assert (await post_signed(http, channel.channel_id, image_body("m-4", PHOTO))).status_code == 200

        async def failed():
            return await pool.fetchrow("SELECT status, attempts, error FROM media_files WHERE status = 'failed'")

        row = await eventually(failed)
    assert row["attempts"] == 1
    assert "not on WHATSAPP_MEDIA_HOSTS" in row["error"] and "127.0.0.1" in row["error"]
    assert elsewhere.requests == []
    assert not any(ACCESS_TOKEN in str(r) for r in elsewhere.requests)
