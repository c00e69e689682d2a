"""DESIGN §5.1: nothing is acknowledged before it is committed; a database outage answers 503.

The gateway reaches PostgreSQL through a loopback proxy that the test cuts and
restores, so the shared server is never touched.
"""

from __future__ import annotations

from tests.server import run_server
from tests.tcp_proxy import through
from tests.whatsapp.fixtures import body
from tests.whatsapp.helpers import eventually, make_whatsapp_channel, post_signed


async def test_a_webhook_during_a_database_outage_gets_503_and_is_stored_once_when_redelivered(db_url, pool, db_proxy):
    channel = await make_whatsapp_channel(pool)
    payload = body("text.json")
    async with run_server(through(db_url, db_proxy.port), gateway_workers=False) as srv, srv.client() as http:
        await db_proxy.cut()
        refused = await post_signed(http, channel.channel_id, payload)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "database_unavailable"
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 503
        listed = await http.get("/api/v1/conversations", headers={"Authorization": f"Bearer {channel.api_key}"})
        assert listed.status_code == 503
        assert await pool.fetchval("SELECT count(*) FROM inbound_events") == 0

        await db_proxy.start()

        # The provider retries until it gets a 2xx; stale pool connections may fail once more.
        async def redeliver():
            return (await post_signed(http, channel.channel_id, payload)).status_code == 200

        await eventually(redeliver, within=15)
        assert (await post_signed(http, channel.channel_id, payload)).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    assert await pool.fetchval("SELECT count(*) FROM inbound_events") == 1

