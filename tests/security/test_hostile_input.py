"""The hostile-input suite: every route of the app, both webhooks (correctly signed, so the
hostile JSON reaches the parser) and every WebSocket frame type, against a real gateway
(uvicorn on loopback, real PostgreSQL).

For each request: never a status >= 500, and a refused (4xx) request changes no table.
Routes are enumerated from the app's router: a route added without a strategy here fails
``test_route_survives_hostile_input`` for that route. Totals are printed at the end of the
run (tests/security/conftest.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route, WebSocketRoute
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from gateway.app import create_app
from gateway.config import load_settings
from inbox.db import create_pool
from schema.ws import CLIENT_FRAME_TYPES
from tests import pg
from tests.security import strategies as hs
from tests.security.tally import TALLY
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

# An AMI host: never a name to resolve or a machine off this one (the setup hook connects to it).
_LOCAL_HOST = st.one_of(st.sampled_from(['"127.0.0.1"', '"::1"']), hs.scalars(huge_strings=False).filter(
    lambda text: not text.startswith('"')))
CHANNEL_FIELDS = {
    "type": hs.either(["whatsapp", "telegram", "asterisk"]),
    "name": hs.either(["support"]),
    "config": st.one_of(
        hs.objects({
            "phone_number_id": hs.either(["5550001"]), "mode": hs.either(["webhook", "polling"]),
            "public_url": hs.either(["https://inbox.example.com"]), "host": _LOCAL_HOST,
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
    ("GET", "/openapi.json"): RouteSpec(),
    ("GET", "/docs"): RouteSpec(),
    ("GET", "/"): RouteSpec(query={"token": Q}),
    ("GET", "/inbox"): RouteSpec(query={"token": Q}),
    ("GET", "/api/v1/channels"): RouteSpec(query={"limit": Q}, cursor=ALL_CURSORS),
    ("POST", "/api/v1/channels"): RouteSpec(body=CHANNEL_FIELDS),
    ("GET", "/api/v1/channels/{id}"): RouteSpec(ids="channels"),
    ("PATCH", "/api/v1/channels/{id}"): RouteSpec(
        ids="spare channels", body={k: v for k, v in CHANNEL_FIELDS.items() if k != "type"}
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
    ("GET", "/api/v1/retention"): RouteSpec(),
    ("PUT", "/api/v1/retention"): RouteSpec(body={
        "messages_days": hs.either([0, 30, None, 36500]), "redact_after_days": hs.either([7, None]),
        "dead_letters_days": hs.either([90]),
    }),
    ("GET", "/api/v1/retention/preview"): RouteSpec(),
    ("GET", "/static/{name}"): RouteSpec(),
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
    # Not the channels the webhook tests post to: a PATCH may change their secrets.
    # WhatsApp only: it has no setup hook that would reach out to a provider.
    "spare channels": "SELECT id FROM channels WHERE type = 'whatsapp' AND name <> 'whatsapp test'",
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
    ids = hs.path_ids(await _valid_ids(world, spec.ids))
    if not spec.ids:  # e.g. DELETE: never a real object (the world must survive the suite)
        ids = ids.filter(lambda segment: not (segment.isdigit() and len(segment) < 12))
    for name in ("{id}", "{channel_id}"):
        if name in path:
            path = path.replace(name, data.draw(ids, label="id"))
    if "{name}" in path:
        asset = st.one_of(st.sampled_from(["inbox.js", "inbox.css", "inbox.html", "..%2F..%2Fpyproject.toml"]),
                          ids)
        path = path.replace("{name}", data.draw(asset, label="name"))
    query = data.draw(hs.query_strings_from(spec.query, list(spec.cursor)), label="query")
    url = f"{path}?{query}" if query else path
    body = data.draw(hs.bodies(spec.body), label="body") if method in ("POST", "PATCH", "PUT") else None
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


# --- WebSocket frames -----------------------------------------------------------------------------

_TOPICS = st.one_of(
    st.lists(
        st.one_of(
            st.sampled_from(["account", "calls", "conversation:1", "conversation:0", "conversation:-1",
                             "conversation:9223372036854775807", "conversation:9223372036854775808",
                             "conversation:9999999999999999999", "conversation:" + "9" * 5000]),
            hs.hostile_str,
        ).map(hs.json_string),
        max_size=6,
    ).map(lambda items: "[" + ",".join(items) + "]"),
    hs.scalars(huge_strings=False),
)
_AFTER = st.one_of(hs.scalars(huge_strings=False), st.sampled_from(["0", "1", "9" * 5000, "9223372036854775808"]))


def _frame(type_: str, fields: Mapping[str, st.SearchStrategy[str]]) -> st.SearchStrategy[str]:
    """A frame of ``type_`` with any subset of ``fields`` (hostile values) and maybe a hostile extra key."""
    return hs.objects(fields).map(lambda body: f'{{"type":"{type_}"' + ("," + body[1:] if body != "{}" else "}"))


WS_FRAMES: dict[str, st.SearchStrategy[str | bytes]] = {
    "subscribe": _frame("subscribe", {"topics": _TOPICS, "after": _AFTER}),
    "unsubscribe": _frame("unsubscribe", {"topics": _TOPICS}),
    "ping": _frame("ping", {"id": hs.scalars(huge_strings=False)}),
    # Any document, including unknown types and nesting far deeper than any frame.
    "other": hs.json_values(huge_strings=False, max_depth=10_000),
    "binary": st.binary(max_size=200),
}
# Client frames are refused above 64 KiB by the server itself (tests/security/test_limits.py).
_FRAME_BYTES = 60_000


async def test_every_client_frame_type_is_covered():
    assert set(CLIENT_FRAME_TYPES) <= set(WS_FRAMES), "a client frame type without a hostile-input strategy"


async def _reply(ws: ClientConnection) -> dict:
    """The next frame that answers the client (events may come first after a subscribe)."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame["type"] != "event":
            return frame


@pytest.mark.parametrize("kind", list(WS_FRAMES))
@FUZZ
@given(data=st.data())
async def test_ws_frame_survives_hostile_input(world: World, kind: str, data: st.DataObject):
    frame = data.draw(WS_FRAMES[kind].filter(
        lambda f: len(f if isinstance(f, bytes) else f.encode("utf-8", "surrogatepass")) < _FRAME_BYTES
    ), label="frame")
    async with ws_connect(f"{world.server.ws_url}/ws", additional_headers=world.admin()) as ws:
        try:
            await ws.send(frame)
            TALLY.ws_frames += 1
            reply = await _reply(ws)
            TALLY.ws_error_frames += reply["type"] == "error"
            assert reply["type"] in ("error", "subscribed", "pong"), reply
            await ws.send('{"type": "ping"}')  # and the socket still serves
            assert (await _reply(ws))["type"] == "pong"
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            TALLY.ws_server_errors += code == 1011
            pytest.fail(f"the socket was closed ({code}) by a {kind} frame: {frame[:200]!r}")


# --- targeted cases: each input an audit found to answer 500 (issue 9, finding 11) ---------------

_TG_UPDATE = '{"update_id": %s, "message": {"message_id": 1, "date": 1700000000, "chat": {"id": 42, "type": "private"}, "text": "hi", "n": %s}}'  # noqa: E501
_DEEP = "[" * 100_000 + "]" * 100_000


async def _refused(world: World, method: str, url: str, body: str | bytes | None = None,
                   headers: dict[str, str] | None = None) -> dict:
    """Send, expect a 4xx with an error body, and prove nothing was stored."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    before = await snapshot(world.pool)
    response = await world.request(method, url, body=raw, headers=headers if headers is not None else world.admin())
    assert 400 <= response.status_code < 500, (url[:100], response.status_code, response.text[:300])
    assert await snapshot(world.pool) == before
    error: dict = response.json()["error"]
    return {"status": response.status_code, **error}


async def _readable(world: World) -> None:
    for url in ("/api/v1/inbound?limit=200", "/api/v1/inbound?status=failed&limit=200"):
        listed = await world.request("GET", url, headers=world.admin())
        assert listed.status_code == 200, listed.text[:300]
        for item in listed.json()["items"]:
            one = await world.request("GET", f"/api/v1/inbound/{item['id']}", headers=world.admin())
            assert one.status_code == 200, one.text[:300]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
async def test_telegram_webhook_refuses_non_finite_numbers(world: World, number: str):
    url = f"/webhooks/telegram/{world.telegram_channel}"
    error = await _refused(world, "POST", url, _TG_UPDATE % (7, number), world.telegram_headers())
    assert error["status"] == 400 and error["code"] == "malformed_json"
    await _readable(world)


async def test_a_stored_non_finite_dead_letter_stays_readable(world: World):
    """Rows an older gateway stored (NaN inside the payload) are shown verbatim, not a 500."""
    await world.pool.execute(
        """INSERT INTO inbound_events (account_id, channel_id, dedup_key, status, error, payload)
           VALUES ($1, $2, 'legacy-nan', 'failed', 'legacy', $3)""",
        world.account_id, world.telegram_channel, _TG_UPDATE % (8, "NaN") + ' {"\\ud800": 1}',
    )
    await world.pool.execute(
        """INSERT INTO inbound_events (account_id, channel_id, dedup_key, status, error, payload)
           VALUES ($1, $2, 'legacy-surrogate', 'failed', 'legacy', $3)""",
        world.account_id, world.telegram_channel, '{"\\ud800": "\\u0000", "n": NaN}',
    )
    await _readable(world)


@pytest.mark.parametrize("digits", [20, 4301, 5000])
async def test_huge_integers_are_refused_everywhere(world: World, digits: int):
    huge = "9" * digits
    for url, body in [
        ("/api/v1/keys", f'{{"name": "k", "role": "agent", "n": {huge}}}'),
        ("/api/v1/channels", f'{{"type": "whatsapp", "name": "x", "config": {{"phone_number_id": "5", "n": {huge}}},'
                             f' "secrets": {{"access_token": "a", "app_secret": "b", "verify_token": "c"}}}}'),
        ("/api/v1/calls", f'{{"channel_id": {huge}, "agent": "1001", "to_number": "+15551234567"}}'),
        (f"/api/v1/conversations/{world.conversation_id}/messages", f'{{"text": "hi", "reply_to_id": {huge}}}'),
    ]:
        assert (await _refused(world, "POST", url, body))["status"] == 422
    tg = await _refused(world, "POST", f"/webhooks/telegram/{world.telegram_channel}", _TG_UPDATE % (huge, 1),
                        world.telegram_headers())
    assert tg["status"] == 400
    body = f'{{"object": "whatsapp_business_account", "entry": [{{"id": {huge}}}]}}'.encode()
    wa = await _refused(world, "POST", f"/webhooks/whatsapp/{world.whatsapp_channel}", body,
                        world.whatsapp_headers(body))
    assert wa["status"] == 400


async def test_deep_nesting_is_refused_everywhere(world: World):
    for url in ("/api/v1/keys", "/api/v1/channels", "/api/v1/calls",
                f"/api/v1/conversations/{world.conversation_id}/messages"):
        assert (await _refused(world, "POST", url, _DEEP))["code"] == "malformed_json"
    assert (await _refused(world, "PATCH", f"/api/v1/conversations/{world.conversation_id}",
                           '{"assignee": ' + _DEEP + "}"))["code"] == "malformed_json"
    deep = _DEEP.encode()
    await _refused(world, "POST", f"/webhooks/telegram/{world.telegram_channel}", deep, world.telegram_headers())
    await _refused(world, "POST", f"/webhooks/whatsapp/{world.whatsapp_channel}", deep, world.whatsapp_headers(deep))
    # Just past the limit, shallow enough for Python's own parser: still refused, not stored.
    shallow = ('{"update_id": 9, "x": ' + "[" * 65 + "]" * 65 + "}").encode()
    await _refused(world, "POST", f"/webhooks/telegram/{world.telegram_channel}", shallow, world.telegram_headers())


@pytest.mark.parametrize("body", [
    '{"\\ud800": "\\u0000"}',
    '{"name": "k", "\\udfff\\u0000": "\\u0000"}',
    '{"type": "whatsapp", "name": "x", "config": {"phone_number_id": "5", "\\ud800": "\\u0000"}}',
])
async def test_lone_surrogate_key_with_nul_value_gets_an_encodable_422(world: World, body: str):
    for method, url in [("POST", "/api/v1/keys"), ("POST", "/api/v1/channels"),
                        ("PATCH", f"/api/v1/conversations/{world.conversation_id}")]:
        error = await _refused(world, method, url, body)
        assert error["status"] == 422 and error["code"] == "validation_error"


@pytest.mark.parametrize("value", ['"\\ud800"', '"a\\udfffb"', '["\\ud83d"]', '{"k": "\\ud800\\ud800"}'])
async def test_lone_surrogates_in_channel_config_are_a_422(world: World, value: str):
    create = ('{"type": "whatsapp", "name": "x", "config": {"phone_number_id": "5", "note": VALUE},'
              ' "secrets": {"access_token": "a", "app_secret": "b", "verify_token": "c"}}').replace("VALUE", value)
    assert (await _refused(world, "POST", "/api/v1/channels", create))["status"] == 422
    patch = '{"config": {"note": VALUE}}'.replace("VALUE", value)
    assert (await _refused(world, "PATCH", f"/api/v1/channels/{world.whatsapp_channel}", patch))["status"] == 422


@pytest.mark.parametrize("channel_id", [str(2**63), str(-(2**63) - 1), "1" + "0" * 30, "0", "-1", "1.5", '"1"'])
async def test_out_of_range_channel_id_on_click_to_call_is_a_422(world: World, channel_id: str):
    body = f'{{"channel_id": {channel_id}, "agent": "1001", "to_number": "+15551234567"}}'
    assert (await _refused(world, "POST", "/api/v1/calls", body))["status"] == 422


@pytest.mark.parametrize("value", [str(2**63), "9" * 5000, "-1", "0", "1e3", "\u0661"])
async def test_out_of_range_ids_in_path_and_query(world: World, value: str):
    encoded = hs.encode(value)
    for route in ("/api/v1/channels/{}", "/api/v1/calls/{}", "/api/v1/media/{}", "/api/v1/inbound/{}",
                  "/api/v1/conversations/{}/timeline", "/webhooks/whatsapp/{}"):
        assert (await _refused(world, "GET", route.format(encoded)))["status"] == 404
    for url in ("/api/v1/calls?channel_id={}", "/api/v1/conversations?channel_id={}", "/api/v1/events?after={}",
                "/api/v1/inbound?channel_id={}", "/api/v1/calls?conversation_id={}"):
        if value in ("0",) and "after" in url:
            continue  # after=0 is the start of the log
        assert (await _refused(world, "GET", url.format(encoded)))["status"] == 400


def _cursor(text: str) -> str:
    return hs.encode(base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("="))


_HOSTILE_CURSORS = {
    "deep": "[" * 5_000 + "]" * 5_000,
    "nul": '["{kind}", "\\u0000", 1]',
    "surrogate": '["{kind}", "\\ud800", 1]',
    "surrogate kind": '["\\ud800", 1]',
    "calendar low": '["{kind}", "0001-01-01T00:00:00+14:00", 1]',
    "calendar high": '["{kind}", "9999-12-31T23:59:59-14:00", 1]',
    "timeline edge": '["timeline", "0001-01-01T00:00:00+14:00", "message", 1]',
    "timeline nul": '["timeline", "2026-01-01T00:00:00+00:00", "a\\u0000", 1]',
    "naive time": '["{kind}", "2026-01-01T00:00:00", 1]',
    "huge int": '["{kind}", ' + "9" * 5000 + "]",
    "nan": '["{kind}", NaN]',
    "long": '["{kind}", "' + "x" * 5000 + '"]',
}
_LISTS = {"channels": "/api/v1/channels", "conversations": "/api/v1/conversations",
          "contacts": "/api/v1/contacts", "events": "/api/v1/events", "inbound": "/api/v1/inbound",
          "keys": "/api/v1/keys", "calls": "/api/v1/calls", "timeline": "/api/v1/conversations/{}/timeline"}


@pytest.mark.parametrize("name", list(_HOSTILE_CURSORS))
async def test_hostile_cursors_are_a_400(world: World, name: str):
    for kind, url in _LISTS.items():
        url = url.format(world.conversation_id)
        cursor = _cursor(_HOSTILE_CURSORS[name].replace("{kind}", kind))
        error = await _refused(world, "GET", f"{url}?cursor={cursor}")
        assert (error["status"], error["code"]) == (400, "invalid_cursor"), (kind, error)


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                   "0001-01-01T00:00:00.000001+23:59"])
async def test_stats_at_the_edge_of_the_calendar_is_a_400(world: World, since: str):
    for param in ("since", "until"):
        error = await _refused(world, "GET", f"/api/v1/stats?{param}={hs.encode(since)}")
        assert (error["status"], error["code"]) == (400, "invalid_parameter")
    ok = await world.request("GET", "/api/v1/stats?since=0001-01-01T00:00:00-14:00", headers=world.admin())
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("frame", [
    '{"type": "subscribe", "topics": ["account"], "after": ' + "9" * 5000 + "}",
    '{"type": "subscribe", "topics": ["account"], "after": 1e999}',
    '{"type": "subscribe", "topics": ["account"], "after": NaN}',
    '{"type": "subscribe", "topics": ["conversation:9999999999999999999"]}',
    '{"type": "subscribe", "topics": ["conversation:9223372036854775808"]}',
    '{"type": "subscribe", "topics": ["\\ud800"]}',
    '{"type": "unsubscribe", "topics": ["a\\u0000"]}',
    '{"type": "ping", "\\ud800": "\\u0000"}',
    "[" * 20_000 + "]" * 20_000,
])
async def test_ws_frames_that_closed_1011_get_an_error_frame(world: World, frame: str):
    async with ws_connect(f"{world.server.ws_url}/ws", additional_headers=world.admin()) as ws:
        await ws.send(frame)
        TALLY.ws_frames += 1
        reply = await _reply(ws)
        TALLY.ws_error_frames += reply["type"] == "error"
        assert reply["type"] == "error" and reply["code"] in ("invalid_frame", "malformed_frame", "invalid_topic")
        await ws.send('{"type": "ping"}')
        assert (await _reply(ws))["type"] == "pong"


async def test_error_responses_quoting_client_text_can_always_be_encoded(world: World):
    for url in ("/api/v1/%ED%A0%80", "/api/v1/channels/%00", "/%ED%A0%80%00"):
        response = await world.request("GET", url, headers=world.admin())
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = await world.request("PUT", "/api/v1/keys", headers=world.admin())
    assert response.status_code == 405
