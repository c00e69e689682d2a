"""SIGTERM under load on one of two replicas sharing PostgreSQL and Redis (gateway.shutdown).

Nothing acknowledged is lost, nothing is reset while draining, live sockets
get 1001 and resume on the other replica with no missed seq, and a reply whose
send is in flight when the signal comes is sent exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import pytest
import websockets

from tests.fakes.graph_api import running_graph_api
from tests.whatsapp.helpers import ACCESS_TOKEN, PHONE_NUMBER_ID, compact, make_whatsapp_channel, post_signed
from tests.ws.helpers import gateway_process

pytestmark = pytest.mark.timeout(180)


def text_body(wamid: str, text: str, sender: str = "4915112345678") -> bytes:
    return compact({"object": "whatsapp_business_account", "entry": [{"id": "209876543210987", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550109876", "phone_number_id": PHONE_NUMBER_ID},
                  "contacts": [{"profile": {"name": "Lena"}, "wa_id": sender}],
                  "messages": [{"from": sender, "id": wamid, "timestamp": "1893456000", "type": "text",
                                "text": {"body": text}}]}}]}]})


class Stream:
    """A WebSocket client that follows the account across replicas, resuming with ``after``."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.seqs: list[int] = []
        self.close_codes: list[int | None] = []
        self.got = asyncio.Condition()

    async def follow(self, ws_url: str) -> None:
        after = self.seqs[-1] if self.seqs else 0
        async with websockets.connect(f"{ws_url}/ws", additional_headers={"Authorization": f"Bearer {self.key}"}) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topics": ["account"], "after": after}))
            try:
                async for raw in ws:
                    frame = json.loads(raw)
                    if frame["type"] == "event":
                        async with self.got:
                            self.seqs.append(frame["seq"])
                            self.got.notify_all()
            except websockets.ConnectionClosed:
                pass
            self.close_codes.append(ws.close_code)

    async def wait_for(self, seq: int, within: float = 30) -> None:
        async with asyncio.timeout(within), self.got:
            await self.got.wait_for(lambda: bool(self.seqs) and self.seqs[-1] >= seq)


async def test_sigterm_drains_one_replica_without_losing_or_doubling_anything(db_url, pool, redis_url, redis_prefix):
    async with running_graph_api({PHONE_NUMBER_ID: ACCESS_TOKEN}) as graph:
        channel = await make_whatsapp_channel(pool)
        common = {"REDIS_URL": redis_url, "GATEWAY_REDIS_PREFIX": redis_prefix, "WHATSAPP_API_BASE": graph.base_url,
                  "GATEWAY_SHUTDOWN_TIMEOUT": "30"}
        async with gateway_process(db_url, GATEWAY_WORKERS="true", **common) as a, \
                gateway_process(db_url, GATEWAY_WORKERS="false", **common) as b:
            # Fresh connections only: a keep-alive race is the client's, not the drain's.
            fresh = httpx.Limits(max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=a.url, timeout=10, limits=fresh) as to_a, \
                    httpx.AsyncClient(base_url=b.url, timeout=10) as to_b:
                assert (await post_signed(to_a, channel.channel_id, text_body("wamid.first", "hi"))).status_code == 200
                conversation_id = await pool.fetchval("SELECT id FROM conversations")

                stream = Stream(channel.api_key)
                following = asyncio.create_task(stream.follow(a.ws_url))
                await stream.wait_for(await pool.fetchval("SELECT last_seq FROM accounts"))

                # A reply whose send is in flight at the provider when the signal comes.
                graph.hold = asyncio.Event()
                reply = await to_a.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": "on it"},
                                        headers={"Authorization": f"Bearer {channel.api_key}"})
                assert reply.status_code == 202
                async with asyncio.timeout(30):
                    await graph.holding.wait()

                acked: list[str] = []
                broken: list[str] = []

                async def load() -> None:
                    n = 0
                    while a.proc.returncode is None:
                        n += 1
                        wamid = f"wamid.load.{n}"
                        try:
                            response = await post_signed(to_a, channel.channel_id, text_body(wamid, f"load {n}"))
                        except httpx.ConnectError:
                            await asyncio.sleep(0.01)  # the listener is closed: a balancer would go elsewhere
                            continue
                        except httpx.HTTPError as exc:
                            broken.append(f"{wamid}: {exc!r}")
                            continue
                        if response.status_code == 200:
                            acked.append(wamid)
                        else:
                            broken.append(f"{wamid}: {response.status_code}")

                loading = asyncio.create_task(load())
                while len(acked) < 5:  # noqa: ASYNC110 - the load is under way before the signal
                    await asyncio.sleep(0.01)
                a.proc.terminate()

                await following  # ends when A closes the socket
                assert stream.close_codes == [1001]
                graph.hold.set()  # the send in flight now completes, during the drain

                following = asyncio.create_task(stream.follow(b.ws_url))
                async with asyncio.timeout(60):
                    assert await a.proc.wait() == 0
                await loading

                # More traffic on the surviving replica reaches the resumed socket.
                assert (await post_signed(to_b, channel.channel_id, text_body("wamid.after", "still there"))
                        ).status_code == 200
                last_seq = await pool.fetchval("SELECT last_seq FROM accounts")
                await stream.wait_for(last_seq)
                following.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await following

        assert broken == []
        assert acked, "no request was served before the listener closed"
        stored = {r["external_id"] for r in await pool.fetch("SELECT external_id FROM messages")}
        assert set(acked) <= stored
        assert stream.seqs == list(range(1, last_seq + 1))  # every event once, in order, across the move
        message = await pool.fetchrow("SELECT status, external_id FROM messages WHERE direction = 'outbound'")
        assert message["status"] == "sent"
        assert len(graph.sends_with_text("on it")) == 1
        outcomes = await pool.fetch("SELECT outcome FROM outbound_attempts")
        assert [r["outcome"] for r in outcomes] == ["sent"]
