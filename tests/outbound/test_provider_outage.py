"""A provider API that goes away: replies wait and go out once it is back, a hung API never
holds up ingest, and nothing is sent twice (real server, real Postgres, a fake Graph API)."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from gateway.outbound_worker import OutboundConfig
from tests.fakes.graph_api import VERSION, FakeGraphApi
from tests.redis_server import free_port
from tests.server import run_server
from tests.whatsapp.fixtures import raw
from tests.whatsapp.helpers import ACCESS_TOKEN, PHONE_NUMBER_ID, eventually, make_whatsapp_channel, post_signed

# Retries come fast in tests; a send that hangs is given up on after two seconds.
CONFIG = OutboundConfig(concurrency=2, poll_interval=0.02, backoff_base=0.05, backoff_cap=0.2, max_attempts=50,
                        send_timeout=2.0)


class Provider:
    """The fake Graph API on a fixed port, so it can go away and come back at the same address."""

    def __init__(self) -> None:
        self.fake = FakeGraphApi({PHONE_NUMBER_ID: ACCESS_TOKEN})
        self.port = free_port()
        self.fake.url = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.fake.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def text_body(wamid: str, text: str) -> dict:
    data = json.loads(raw("text.json"))
    message = data["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"], message["text"]["body"] = wamid, text
    return data


async def _status(pool, message_id: int) -> str:
    return await pool.fetchval("SELECT status FROM messages WHERE id = $1", message_id)


async def _sent(pool, message_id: int) -> bool:
    return await _status(pool, message_id) == "sent"


@contextlib.asynccontextmanager
async def reply_in_flight(db_url: str, provider: Provider, text: str):
    """A gateway whose replies go to ``provider``, a customer's conversation, and one reply queued."""
    async with run_server(db_url, whatsapp_api_base=f"{provider.fake.url}/{VERSION}",
                          extras={"outbound_config": CONFIG}) as srv:
        channel = await make_whatsapp_channel(srv.ctx.pool)
        async with srv.client() as hook, srv.client(channel.api_key) as api:
            assert (await post_signed(hook, channel.channel_id, raw("text.json"))).status_code == 200
            conversation_id = await srv.ctx.pool.fetchval("SELECT id FROM conversations")
            reply = await api.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": text})
            assert reply.status_code == 202

            async def post(wamid: str, body: str) -> None:
                posted = await post_signed(hook, channel.channel_id, text_body(wamid, body))
                assert posted.status_code == 200
                assert await srv.ctx.pool.fetchval(
                    "SELECT count(*) FROM messages WHERE external_id = $1", wamid) == 1

            yield srv.ctx.pool, reply.json()["id"], post


async def test_replies_wait_out_a_provider_that_is_down_and_go_out_once_it_is_back(db_url):
    provider = Provider()  # not started: connections are refused
    try:
        async with reply_in_flight(db_url, provider, "on it") as (pool, message_id, post):

            async def retried() -> bool:
                return await pool.fetchval(
                    """SELECT count(*) >= 3 FROM outbound_attempts a JOIN outbound_jobs j ON j.id = a.job_id
                       WHERE j.message_id = $1 AND a.outcome = 'transient_error'""", message_id)

            await eventually(retried)
            assert await _status(pool, message_id) == "pending"
            await post("wamid.during.outage", "still there?")  # ingest goes on while replies wait

            await provider.start()
            await eventually(lambda: _sent(pool, message_id))
        assert len(provider.fake.sends_with_text("on it")) == 1
    finally:
        await provider.stop()


async def test_a_hung_provider_never_holds_up_ingest_and_its_send_is_not_repeated(db_url):
    provider = Provider()
    await provider.start()
    provider.fake.hold = asyncio.Event()  # accepts the send, never answers
    try:
        async with reply_in_flight(db_url, provider, "hello?") as (pool, message_id, post):
            async with asyncio.timeout(10):
                await provider.fake.holding.wait()
            for n in range(5):  # while the send hangs, webhooks are answered and stored
                await post(f"wamid.hung.{n}", f"ping {n}")

            async def failed():
                return await pool.fetchrow(
                    "SELECT status, error_code FROM messages WHERE id = $1 AND status = 'failed'", message_id)

            row = await eventually(failed)
        # The request may have reached WhatsApp: at most once, so it is failed with the reason, never resent.
        assert row["error_code"] == "delivery_unknown"
        assert len(provider.fake.sends_with_text("hello?")) == 1
    finally:
        provider.fake.hold.set()
        await provider.stop()
