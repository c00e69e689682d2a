"""The hostile-input suite: every route of the app, both webhooks (correctly signed, so the
hostile JSON reaches the parser) and every WebSocket frame type, against a real gateway
(uvicorn on loopback, real PostgreSQL).

For each request: never a status >= 500, and a refused (4xx) request changes no table.
Routes are enumerated from the app's router: a route added without a strategy here fails
``test_route_survives_hostile_input`` for that route. Totals are printed at the end of the
run (tests/security/conftest.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route, WebSocketRoute

from gateway.app import create_app
from gateway.config import load_settings
from inbox.db import create_pool
from tests import pg
from tests.security import strategies as hs
from tests.security.world import VERIFY_TOKEN, World, running_world, snapshot

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "60"))  # raise locally for a deeper run
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@dataclass(frozen=True)
class RouteSpec:
    query: Mapping[str, st.SearchStrategy[str]] = field(default_factory=dict)
    cursor: tuple[str, ...] = ()  # cursor kinds of the list (others' kinds must be refused too)
    body: Mapping[str, st.SearchStrategy[str]] | None = None  # the fields of the route's own body
    ids: str = ""  # table whose ids are valid in the path ("" = no valid id is ever sent, e.g. DELETE)


Q = hs.query_values
ALL_CURSORS = ("channels", "conversations", "timeline", "contacts", "events", "inbound", "keys", "calls")
_STATUS = st.sampled_from(["open", "pending", "closed", "snoozed"]).map(json.dumps)

CHANNEL_FIELDS = {
    "type": hs.either(["whatsapp", "telegram", "asterisk"]),
    "name": hs.either(["support"]),
    "config": st.one_of(
        hs.objects({
            "phone_number_id": hs.either(["5550001"]), "mode": hs.either(["webhook", "polling"]),
            "public_url": hs.either(["https://inbox.example.com"]), "host": hs.either(["127.0.0.1"]),
            "port": hs.either([1]), "username": hs.either(["gw"]), "agent_pattern": hs.either([r"PJSIP/\d+"]),
            "inbound_contexts": hs.either([["from-carrier"]]),
        }),
        hs.json_values(max_depth=200),
    ),
    "secrets": st.one_of(
        hs.objects({
            "access_token": hs.either(["t"]), "app_secret": hs.either(["s"]), "verify_token": hs.either(["v"]),
            "bot_token": hs.either(["123:abc"]), "webhook_secret": hs.either(["abc"]), "secret": hs.either(["x"]),
        }),
        hs.json_values(max_depth=200),
    ),
}
WHATSAPP_BODY = {
    "object": hs.either(["whatsapp_business_account"]),
    "entry": st.one_of(
        hs.objects({"id": hs.either(["1"]), "changes": hs.either([[{
            "field": "messages",
            "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "1001"},
                      "contacts": [{"wa_id": "4915100000009", "profile": {"name": "Eve"}}],
                      "messages": [{"from": "4915100000009", "id": "wamid.x", "timestamp": "1700000000",
                                    "type": "text", "text": {"body": "hi"}}]},
        }]])}).map(lambda entry: f"[{entry}]"),
        hs.json_values(max_depth=200),
    ),
}
_TG_MESSAGE = hs.objects({
    "message_id": hs.either([1]), "date": hs.either([1700000000]),
    "chat": hs.either([{"id": 42, "type": "private", "first_name": "Eve"}]),
    "from": hs.either([{"id": 42, "is_bot": False, "first_name": "Eve"}]),
    "text": hs.either(["hi"]),
})
TELEGRAM_BODY = {
    "update_id": hs.either([1, 2, 3]),
    "message": st.one_of(_TG_MESSAGE, hs.json_values(max_depth=200)),
    "edited_message": _TG_MESSAGE,
    "message_reaction": hs.json_values(max_depth=200),
}

SPECS: dict[tuple[str, str], RouteSpec] = {
    ("GET", "/healthz"): RouteSpec(),
    ("GET", "/readyz"): RouteSpec(),
    ("GET", "/metrics"): RouteSpec(),
    ("GET", "/"): RouteSpec(query={"token": Q}),
    ("GET", "/inbox"): RouteSpec(query={"token": Q}),
    ("GET", "/api/v1/channels"): RouteSpec(query={"limit": Q}, cursor=ALL_CURSORS),
    ("POST", "/api/v1/channels"): RouteSpec(body=CHANNEL_FIELDS),
    ("GET", "/api/v1/channels/{id}"): RouteSpec(ids="channels"),
    ("PATCH", "/api/v1/channels/{id}"): RouteSpec(
        ids="channels", body={k: v for k, v in CHANNEL_FIELDS.items() if k != "type"}
    ),
    ("DELETE", "/api/v1/channels/{id}"): RouteSpec(),
    ("GET", "/api/v1/conversations"): RouteSpec(
        query={"status": Q, "channel_id": Q, "assignee": Q, "q": Q, "limit": Q}, cursor=ALL_CURSORS
    ),
    ("GET", "/api/v1/conversations/{id}"): RouteSpec(ids="conversations"),
    ("PATCH", "/api/v1/conversations/{id}"): RouteSpec(
        ids="conversations",
        body={"status": st.one_of(_STATUS, hs.scalars()), "assignee": hs.either(["lena"]),
              "unread_count": hs.either([0])},
    ),
    ("POST", "/api/v1/conversations/{id}/read"): RouteSpec(ids="conversations", body={}),
    ("GET", "/api/v1/conversations/{id}/timeline"): RouteSpec(
        ids="conversations", query={"order": Q, "limit": Q}, cursor=ALL_CURSORS
    ),
    ("POST", "/api/v1/conversations/{id}/messages"): RouteSpec(
        ids="conversations", body={"text": hs.either(["hello"]), "reply_to_id": hs.either([1])}
    ),
    ("GET", "/api/v1/messages/{id}"): RouteSpec(ids="messages"),
    ("GET", "/api/v1/contacts"): RouteSpec(query={"q": Q, "limit": Q}, cursor=ALL_CURSORS),
    ("GET", "/api/v1/contacts/{id}"): RouteSpec(ids="contacts"),
    ("GET", "/api/v1/events"): RouteSpec(query={"after": Q, "limit": Q}, cursor=ALL_CURSORS),
    ("GET", "/api/v1/inbound"): RouteSpec(query={"status": Q, "channel_id": Q, "limit": Q}, cursor=ALL_CURSORS),
    ("GET", "/api/v1/inbound/{id}"): RouteSpec(ids="inbound_events"),
    ("GET", "/api/v1/stats"): RouteSpec(query={"since": Q, "until": Q}),
    ("GET", "/api/v1/keys"): RouteSpec(query={"limit": Q}, cursor=ALL_CURSORS),
    ("POST", "/api/v1/keys"): RouteSpec(body={"name": hs.either(["ci"]), "role": hs.either(["agent", "admin"])}),
    ("DELETE", "/api/v1/keys/{id}"): RouteSpec(),
    ("GET", "/api/v1/media/{id}"): RouteSpec(ids="media_files"),
    ("GET", "/api/v1/calls"): RouteSpec(
        query={"channel_id": Q, "conversation_id": Q, "status": Q, "direction": Q, "agent": Q, "limit": Q},
        cursor=ALL_CURSORS,
    ),
    ("POST", "/api/v1/calls"): RouteSpec(body={
        "channel_id": st.one_of(hs.scalars(), st.sampled_from(["9223372036854775808", "1" + "0" * 30, "3"])),
        "agent": hs.either(["1001"]), "to_number": hs.either(["+15551234567"]),
    }),
    ("GET", "/api/v1/calls/{id}"): RouteSpec(ids="calls"),
    ("GET", "/webhooks/whatsapp/{channel_id}"): RouteSpec(
        ids="whatsapp",
        query={"hub.mode": st.one_of(st.just("subscribe"), Q), "hub.verify_token": st.one_of(st.just(VERIFY_TOKEN), Q),
               "hub.challenge": Q},
    ),
    ("POST", "/webhooks/whatsapp/{channel_id}"): RouteSpec(ids="whatsapp", body=WHATSAPP_BODY),
    ("POST", "/webhooks/telegram/{channel_id}"): RouteSpec(ids="telegram", body=TELEGRAM_BODY),
}
WS_ROUTES = {"/ws"}


def app_routes() -> list[tuple[str, str]]:
    """Every (method, path) the app serves, HEAD aside (Starlette answers it with the GET handler)."""
    app = create_app(load_settings(database_url="postgresql://unused@127.0.0.1/unused"))
    found: list[tuple[str, str]] = []
    for route in app.routes:
        if isinstance(route, WebSocketRoute):
            found.append(("WS", route.path))
        elif isinstance(route, Route):
            found += [(m, route.path) for m in sorted(route.methods or ()) if m != "HEAD"]
        else:
            found.append(("?", getattr(route, "path", repr(route))))
    return found


HTTP_ROUTES = [r for r in app_routes() if r[0] != "WS"]


async def test_every_route_is_covered():
    """A route the suite does not know (or one that no longer exists) must be noticed."""
    served = set(app_routes())
    known = set(SPECS) | {("WS", p) for p in WS_ROUTES}
    assert served - known == set(), "routes without a hostile-input strategy (add them to SPECS)"
    assert known - served == set(), "strategies for routes the app no longer serves"


# One gateway for the whole module: starting and stopping one per route would cost more than the fuzzing.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(pg_template):
    name, url = await pg.create_database(pg_template)
    pool = await create_pool(url, min_size=1, max_size=4)
    try:
        async with running_world(url, pool) as w:
            yield w
    finally:
        await pool.close()
        await pg.drop_database(name)


_ID_SOURCES = {
    "whatsapp": "SELECT id FROM channels WHERE type = 'whatsapp'",
    "telegram": "SELECT id FROM channels WHERE type = 'telegram'",
}


async def _valid_ids(world: World, source: str) -> list[int]:
    if not source:
        return []
    sql = _ID_SOURCES.get(source, f"SELECT id FROM {source}")
    return [r["id"] for r in await world.pool.fetch(sql + " ORDER BY id LIMIT 20")]


def _auth(world: World) -> st.SearchStrategy[dict[str, str]]:
    admin = {"Authorization": f"Bearer {world.admin_key}"}
    return st.one_of(
        st.just(admin), st.just(admin), st.just({"Authorization": f"Bearer {world.agent_key}"}),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=300).map(
            lambda t: {"Authorization": f"Bearer {t}"}
        ),
    )


@pytest.mark.parametrize("route", HTTP_ROUTES, ids=[f"{m} {p}" for m, p in HTTP_ROUTES])
@FUZZ
@given(data=st.data())
async def test_route_survives_hostile_input(world: World, route: tuple[str, str], data: st.DataObject):
    method, template = route
    spec = SPECS.get(route)
    if spec is None:
        pytest.fail(f"no hostile-input strategy for {method} {template}: add it to SPECS")
    path = template
    for name in ("{id}", "{channel_id}"):
        if name in path:
            path = path.replace(name, data.draw(hs.path_ids(await _valid_ids(world, spec.ids)), label="id"))
    query = data.draw(hs.query_strings_from(spec.query, list(spec.cursor)), label="query")
    url = f"{path}?{query}" if query else path
    body = data.draw(hs.bodies(spec.body), label="body") if method in ("POST", "PATCH") else None
    if template.startswith("/webhooks/whatsapp/") and body is not None:
        headers = data.draw(st.sampled_from([world.whatsapp_headers(body), world.whatsapp_headers(body),
                                             {"X-Hub-Signature-256": "sha256=00"}]), label="headers")
    elif template.startswith("/webhooks/telegram/"):
        headers = data.draw(st.sampled_from([world.telegram_headers(), world.telegram_headers(),
                                             {"X-Telegram-Bot-Api-Secret-Token": "wrong"}]), label="headers")
    else:
        headers = data.draw(_auth(world), label="auth")
        if template.endswith("/messages"):
            key = data.draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=400).map(
                str.strip), label="idempotency key")
            headers = {**headers, "Idempotency-Key": key}

    before = await snapshot(world.pool)
    response = await world.request(method, url, body=body, headers=headers)
    assert response.status_code < 500, (method, url[:300], (body or b"")[:300], response.text[:300])
    if 400 <= response.status_code < 500:
        assert await snapshot(world.pool) == before, f"a refused request changed the database: {method} {url[:200]}"
        assert response.json()["error"]["code"], response.text
    if template.startswith("/webhooks/") and method == "POST":
        # Whatever a webhook stored must stay readable: no dead letter may break the list.
        listed = await world.request("GET", "/api/v1/inbound?limit=200", headers=world.admin())
        assert listed.status_code == 200, listed.text[:300]
