"""Security headers on every kind of response, the inbox page's policy, and WebSocket auth by subprotocol."""

from __future__ import annotations

import json
import re

import httpx
import pytest
import websockets
from starlette.requests import Request
from starlette.routing import Route
from websockets.exceptions import InvalidStatus

from gateway.ws import WS_KEY_PROTOCOL_PREFIX, WS_PROTOCOL
from tests.server import run_server
from tests.ws.helpers import make_account

EVERYWHERE = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


def assert_secure(headers: httpx.Headers | websockets.datastructures.Headers, what: str) -> None:
    for name, value in EVERYWHERE.items():
        assert headers.get(name) == value, f"{what}: {name} is {headers.get(name)!r}"
    assert "frame-ancestors 'none'" in headers.get("content-security-policy", ""), what


@pytest.fixture
async def server(db_url):
    async with run_server(db_url) as srv:
        async def boom(request: Request) -> None:
            raise RuntimeError("a bug")

        srv.app.router.routes.append(Route("/test-only/boom", boom))
        yield srv


async def test_every_kind_of_http_response_carries_the_security_headers(server):
    _, key = await make_account(server.ctx.pool)
    async with server.client() as anon, server.client(key) as http:
        responses = {
            "200 json": await http.get("/api/v1/conversations"),
            "200 page": await anon.get("/inbox"),
            "200 script": await anon.get("/static/inbox.js"),
            "307 redirect": await anon.get("/", follow_redirects=False),
            "401": await anon.get("/api/v1/conversations"),
            "404 route": await anon.get("/no/such/route"),
            "404 asset": await anon.get("/static/../inbox_page.py"),
            "405": await anon.delete("/inbox"),
            "422": await http.post("/api/v1/keys", json={"role": "emperor"}),
            "health": await anon.get("/healthz"),
        }
        responses["500"] = await anon.get("/test-only/boom")
    assert responses["500"].status_code == 500
    for what, response in responses.items():
        assert_secure(response.headers, f"{what} ({response.status_code})")


async def test_the_inbox_page_has_a_strict_policy_and_no_inline_script(server):
    async with server.client() as http:
        page = await http.get("/inbox")
        script = await http.get("/static/inbox.js")
        style = await http.get("/static/inbox.css")
    policy = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["frame-ancestors"] == "'none'"
    assert directives["connect-src"].startswith("'self'")
    assert "ws://127.0.0.1" in directives["connect-src"]
    assert re.findall(r"<script\b[^>]*>", page.text) == ['<script type="module" src="/static/inbox.js">']
    assert "<style" not in page.text and not re.search(r"\son\w+=", page.text)
    assert script.headers["content-type"].startswith("text/javascript")
    assert style.headers["content-type"].startswith("text/css")
    # The page renders data as text only and never puts the key in a URL.
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "/ws?token"):
        assert sink not in script.text, sink


async def test_a_hostile_host_header_cannot_add_directives_to_the_policy(server):
    async with server.client() as http:
        page = await http.get("/inbox", headers={"host": "evil; script-src *"})
    assert "script-src *" not in page.headers["content-security-policy"]
    assert "connect-src 'self';" in page.headers["content-security-policy"]


async def test_websocket_refusals_and_upgrades_carry_the_security_headers(server):
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(f"{server.ws_url}/no/such/socket"):
            pass
    assert refused.value.response.status_code == 403
    for name, value in EVERYWHERE.items():
        assert refused.value.response.headers.get(name) == value
    _, key = await make_account(server.ctx.pool)
    async with websockets.connect(f"{server.ws_url}/ws", additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        assert ws.response is not None
        for name, value in EVERYWHERE.items():
            assert ws.response.headers.get(name) == value


async def test_a_browser_client_authenticates_with_subprotocols_and_the_key_is_not_echoed(server):
    _, key = await make_account(server.ctx.pool)
    protocols = [WS_PROTOCOL, WS_KEY_PROTOCOL_PREFIX + key]
    async with websockets.connect(f"{server.ws_url}/ws", subprotocols=protocols) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == WS_PROTOCOL
        assert ws.response is not None and key not in str(ws.response.headers)
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}
    bad = [WS_PROTOCOL, WS_KEY_PROTOCOL_PREFIX + "igw_not-a-key"]
    async with websockets.connect(f"{server.ws_url}/ws", subprotocols=bad) as ws:  # type: ignore[arg-type]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
