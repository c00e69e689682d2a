"""A WhatsApp channel set up through the REST API, as an operator would, then used by WhatsApp."""

from __future__ import annotations

from urllib.parse import urlsplit

from inbox.accounts import create_account
from tests.server import run_server
from tests.whatsapp.fixtures import raw
from tests.whatsapp.helpers import APP_SECRET, PHONE_NUMBER_ID, VERIFY_TOKEN, post_signed


async def test_a_channel_created_through_the_api_answers_the_handshake_and_ingests_signed_posts(db_url):
    async with run_server(db_url, gateway_workers=False) as srv:
        _, key = await create_account(srv.ctx.pool, "acme")
        async with srv.client(key) as api, srv.client() as hook:
            created = await api.post("/api/v1/channels", json={
                "type": "whatsapp", "name": "Support DE",
                "config": {"phone_number_id": PHONE_NUMBER_ID},
                "secrets": {"access_token": "EAAG-secret", "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN},
            })
            assert created.status_code == 201, created.text
            channel = created.json()
            assert "secrets" not in channel and "EAAG-secret" not in created.text
            path = urlsplit(channel["webhook_url"]).path
            assert path == f"/webhooks/whatsapp/{channel['id']}"

            challenge = await hook.get(path, params={"hub.mode": "subscribe", "hub.challenge": "42",
                                                     "hub.verify_token": VERIFY_TOKEN})
            assert challenge.status_code == 200 and challenge.text == "42"
            assert (await post_signed(hook, channel["id"], raw("image.json"))).status_code == 200

            (conversation,) = (await api.get("/api/v1/conversations")).json()["items"]
            assert conversation["channel_type"] == "whatsapp"
            assert conversation["contact"]["name"] == "Lena Fischer"
            timeline = (await api.get(f"/api/v1/conversations/{conversation['id']}/timeline")).json()["items"]
            (item,) = timeline
            message = item["item"]
            assert message["type"] == "image" and message["text"] == "Foto vom beschädigten Paket"
            (media,) = message["media"]
            assert media["url"] == f"/api/v1/media/{media['id']}"
            # Not downloaded yet (no workers here): the media route does not serve it.
            assert (await api.get(media["url"])).status_code == 404
