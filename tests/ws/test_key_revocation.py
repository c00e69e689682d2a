"""A revoked API key stops streaming: its sockets close with 4401 on every process and get nothing posted after."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from gateway.redis_broker import RedisBroker
from tests.server import run_server
from tests.ws.helpers import WsClient, gateway_process, make_account, wait_ready, write_events, ws_connect

# The periodic checks (log gaps, revoked keys) an hour apart: the revocation must travel over Redis.
NO_PERIODIC_CHECK = "3600"


async def _agent_key(http: Any) -> tuple[int, str]:
    response = await http.post("/api/v1/keys", json={"name": "agent", "role": "agent"})
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["key"]


async def _frames_until_closed(client: WsClient, within: float = 10) -> tuple[list[dict[str, Any]], int]:
    """Every frame the socket gets until it closes, and the close code."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        while True:
            try:
                frames.append(json.loads(await client.conn.recv()))
            except ConnectionClosed as closed:
                assert closed.rcvd is not None, "closed without a close frame"
                return frames, closed.rcvd.code


async def test_a_revoked_keys_socket_is_closed_with_4401_and_gets_nothing_posted_after(db_url):
    async with run_server(db_url) as srv:
        account_id, admin_key = await make_account(srv.ctx.pool)
        async with srv.client(admin_key) as http:
            key_id, agent_key = await _agent_key(http)
            async with ws_connect(srv.ws_url, agent_key) as revoked, ws_connect(srv.ws_url, admin_key) as kept:
                await revoked.subscribe(["account"])
                await kept.subscribe(["account"])
                await write_events(srv.ctx.pool, account_id, 1, broker=srv.ctx.broker)
                assert [f["seq"] for f in await revoked.events_until(1)] == [1]

                assert (await http.delete(f"/api/v1/keys/{key_id}")).status_code == 204
                await write_events(srv.ctx.pool, account_id, 3, broker=srv.ctx.broker)

                frames, code = await _frames_until_closed(revoked)
                assert code == 4401
                assert frames == []
                # Other keys of the account go on streaming.
                assert [f["seq"] for f in await kept.events_until(4)] == [1, 2, 3, 4]
            async with ws_connect(srv.ws_url, agent_key) as again:
                _, code = await _frames_until_closed(again)
                assert code == 4401


async def test_a_key_revoked_straight_in_the_database_is_found_by_the_periodic_check(db_url):
    async with run_server(db_url, gateway_ws_check_interval=0.2) as srv:
        _, admin_key = await make_account(srv.ctx.pool)
        async with srv.client(admin_key) as http:
            key_id, agent_key = await _agent_key(http)
        async with ws_connect(srv.ws_url, agent_key) as client:
            await client.subscribe(["account"])
            await srv.ctx.pool.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", key_id)
            _, code = await _frames_until_closed(client)
            assert code == 4401


@pytest.mark.timeout(180)
async def test_a_key_revoked_through_one_process_closes_its_sockets_on_both(db_url, pool, redis_url, redis_prefix):
    env = {"REDIS_URL": redis_url, "GATEWAY_REDIS_PREFIX": redis_prefix, "GATEWAY_WS_CHECK_INTERVAL": NO_PERIODIC_CHECK}
    writer = RedisBroker(redis_url, prefix=redis_prefix)  # a third process that posts events
    async with gateway_process(db_url, **env) as a, gateway_process(db_url, **env) as b:
        await wait_ready(a.url, 200)
        await wait_ready(b.url, 200)
        account_id, admin_key = await make_account(pool)
        async with httpx.AsyncClient(base_url=a.url, headers={"Authorization": f"Bearer {admin_key}"}) as http:
            key_id, agent_key = await _agent_key(http)
            async with contextlib.AsyncExitStack() as stack:
                on_a = await stack.enter_async_context(ws_connect(a.ws_url, agent_key))
                on_b = await stack.enter_async_context(ws_connect(b.ws_url, agent_key))
                kept_b = await stack.enter_async_context(ws_connect(b.ws_url, admin_key))
                for client in (on_a, on_b, kept_b):
                    await client.subscribe(["account"])
                await write_events(pool, account_id, 1, broker=writer)
                for client in (on_a, on_b):
                    assert [f["seq"] for f in await client.events_until(1)] == [1]

                assert (await http.delete(f"/api/v1/keys/{key_id}")).status_code == 204
                await write_events(pool, account_id, 3, broker=writer)

                for client in (on_a, on_b):
                    frames, code = await _frames_until_closed(client)
                    assert (frames, code) == ([], 4401)
                assert [f["seq"] for f in await kept_b.events_until(4)] == [1, 2, 3, 4]
    await writer.close()
