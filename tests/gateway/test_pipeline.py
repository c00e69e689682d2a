"""Commit, then publish: a broker that fails after the commit never turns a stored payload into an error."""

from __future__ import annotations

from gateway.broker import InProcessBroker
from tests.server import run_server
from tests.whatsapp.fixtures import body
from tests.whatsapp.helpers import make_whatsapp_channel, post_signed


class BrokenBroker(InProcessBroker):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def publish(self, events) -> None:
        self.calls += 1
        raise ConnectionError("broker went away")


async def test_a_broker_failure_after_commit_still_acknowledges_and_keeps_the_events_in_the_log(db_url, pool):
    channel = await make_whatsapp_channel(pool)
    broker = BrokenBroker()
    async with run_server(db_url, gateway_workers=False, broker=broker) as srv, srv.client() as http:
        response = await post_signed(http, channel.channel_id, body("text.json"))
        assert response.status_code == 200, response.text
        assert broker.calls >= 1
    names = [r["name"] for r in await pool.fetch("SELECT name FROM events ORDER BY seq")]
    assert names == ["conversation.created", "message.created"]
