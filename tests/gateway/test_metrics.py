"""/metrics counts what the gateway committed."""

from __future__ import annotations

from tests.server import run_server
from tests.whatsapp.fixtures import body
from tests.whatsapp.helpers import make_whatsapp_channel, post_signed


async def test_metrics_count_committed_payloads_by_channel_type_and_outcome(db_url, pool):
    channel = await make_whatsapp_channel(pool)
    async with run_server(db_url, gateway_workers=False) as srv, srv.client() as http:
        def count(status: str) -> float:
            for line in text.splitlines():
                if line.startswith(f'igw_inbound_payloads_total{{channel_type="whatsapp",status="{status}"}}'):
                    return float(line.rsplit(" ", 1)[1])
            return 0.0

        text = (await http.get("/metrics")).text
        before = count("processed"), count("duplicate")
        assert (await post_signed(http, channel.channel_id, body("text.json"))).status_code == 200
        assert (await post_signed(http, channel.channel_id, body("text.json"))).status_code == 200
        text = (await http.get("/metrics")).text
        assert (count("processed"), count("duplicate")) == (before[0] + 1, before[1] + 1)
        assert "igw_ingest_seconds_bucket" in text
        assert "igw_commit_batch_size_bucket" in text
