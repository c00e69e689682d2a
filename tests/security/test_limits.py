"""Limits on what one client may make the gateway hold (issue 9, finding 12), against a real
uvicorn on loopback configured exactly as ``serve`` configures it (``gateway.serve.server_config``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.config import SERVER_MAX_HEAD_BYTES, SettingsError, load_settings
from gateway.ws_limits import CLOSE_TOO_MANY_SOCKETS
from inbox.accounts import create_account, create_api_key
from schema.enums import ApiKeyRole
from tests.server import RunningServer, run_server


@pytest.fixture
async def server(db_url):
    async with run_server(db_url, gateway_workers=False, gateway_ws_max_per_key=2) as srv:
        yield srv


def _port(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


async def test_too_many_request_headers_is_a_431(server: RunningServer):
    async with httpx.AsyncClient(base_url=server.url) as http:
        fine = await http.get("/healthz", headers={f"x-h{i}": "v" for i in range(90)})
        assert fine.status_code == 200
        refused = await http.get("/healthz", headers={f"x-h{i}": "v" for i in range(101)})
        assert refused.status_code == 431
        assert refused.json()["error"]["code"] == "request_headers_too_large"


async def test_request_headers_over_the_app_limit_are_a_431(server: RunningServer):
    async with httpx.AsyncClient(base_url=server.url) as http:
        refused = await http.get("/api/v1/channels", headers={"x-big": "a" * 40_000})
        assert refused.status_code == 431
        assert refused.json()["error"]["code"] == "request_headers_too_large"
        # The connection pool and the server are fine afterwards.
        assert (await http.get("/healthz")).status_code == 200


@pytest.mark.parametrize("shape", ["one huge header", "many headers"])
async def test_a_head_over_the_server_bound_is_a_431_and_a_close(server: RunningServer, shape: str):
    """httptools has no head limit of its own: without gateway.bounded_http the server would buffer
    these megabytes (and more) waiting for the end of the head."""
    size = 4 * SERVER_MAX_HEAD_BYTES
    if shape == "one huge header":
        head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * size
    else:
        head = b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(size // 12))
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(server))

    async def send() -> None:
        with contextlib.suppress(ConnectionError):
            for start in range(0, len(head), 16_384):
                writer.write(head[start:start + 16_384])
                await writer.drain()

    sender = asyncio.create_task(send())
    try:
        answer = await asyncio.wait_for(reader.read(), 10)  # to EOF: the server closes
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_headers_too_large"


async def test_a_big_body_in_one_read_is_not_taken_for_a_head(server: RunningServer):
    body = b"[" + b"1," * 200_000 + b"1]"  # > SERVER_MAX_HEAD_BYTES, sent with its head at once
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(server))
    writer.write(b"POST /api/v1/keys HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                 b"content-length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 401 ")  # the app answered: no key


async def test_websocket_handshake_with_too_many_headers_is_refused(server: RunningServer):
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(f"{server.ws_url}/ws", additional_headers={f"x-h{i}": "v" for i in range(150)}):
            pass
    assert 400 <= refused.value.response.status_code < 500


async def _account_key(server: RunningServer) -> tuple[int, str]:
    return await create_account(server.ctx.pool, "limits")


async def test_websocket_frames_over_64_kib_are_refused_by_the_server(server: RunningServer):
    _, key = await _account_key(server)
    headers = {"Authorization": f"Bearer {key}"}
    async with ws_connect(f"{server.ws_url}/ws", additional_headers=headers, max_size=None) as ws:
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 60_000}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply["type"] == "error" and reply["code"] == "invalid_frame"
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 70_000}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # message too big


async def _subscribed(url: str, key: str, stack: contextlib.AsyncExitStack):
    ws = await stack.enter_async_context(ws_connect(url, additional_headers={"Authorization": f"Bearer {key}"}))
    await ws.send(json.dumps({"type": "subscribe", "topics": ["account"]}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert reply["type"] == "subscribed", reply
    return ws


async def test_open_sockets_per_api_key_are_capped(server: RunningServer):
    account_id, key = await _account_key(server)
    other_key = await create_api_key(server.ctx.pool, account_id, ApiKeyRole.AGENT, name="other")
    url = f"{server.ws_url}/ws"
    async with contextlib.AsyncExitStack() as stack:
        first = await _subscribed(url, key, stack)
        await _subscribed(url, key, stack)
        async with ws_connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as extra:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(extra.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_TOO_MANY_SOCKETS
        assert "2 open WebSockets" in closed.value.rcvd.reason
        # Another key of the same account has its own allowance.
        await _subscribed(url, other_key, stack)
        # A closed socket frees its slot (released when the server's session ends).
        await first.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                await _subscribed(url, key, stack)
                break
            except ConnectionClosed:
                assert time.monotonic() < deadline, "the closed socket's slot was never released"


def test_the_socket_cap_is_a_positive_setting():
    assert load_settings(gateway_ws_max_per_key="5").gateway_ws_max_per_key == 5
    assert load_settings().gateway_ws_max_per_key == 100
    for bad in ("0", "-1", "many"):
        with pytest.raises(SettingsError, match="GATEWAY_WS_MAX_PER_KEY"):
            load_settings(gateway_ws_max_per_key=bad)
