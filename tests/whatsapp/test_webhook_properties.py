"""Arbitrary and mutated bodies, correctly signed, posted to a real server: never a 500."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.whatsapp.parse import decode_body, parse_webhook
from schema.events import ParseError
from tests.server import run_server
from tests.whatsapp.helpers import make_whatsapp_channel, post_signed
from tests.whatsapp.strategies import json_values, mutated_bodies

# One server and database for all examples; the assertions hold whatever earlier examples stored.
EXAMPLES = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture
async def target(db_url):
    async with run_server(db_url, gateway_workers=False) as srv, srv.client() as http:
        channel = await make_whatsapp_channel(srv.ctx.pool)
        yield srv, http, channel


def _expect_dead_letter(raw: bytes) -> bool:
    try:
        parsed = parse_webhook(decode_body(raw))
    except ParseError:
        return True
    return bool(parsed.errors)  # a part could not be read: its neighbours are kept, the payload fails


async def _post_and_check(target, raw: bytes) -> None:
    srv, http, channel = target
    response = await http.post(f"/webhooks/whatsapp/{channel.channel_id}", content=raw,
                               headers={"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert response.status_code == 401  # unsigned: refused before anything else
    response = await post_signed(http, channel.channel_id, raw)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["error"]["code"] == "malformed_json"
        return
    outcome = response.json()
    if outcome["status"] == "duplicate":
        return
    row = await srv.ctx.pool.fetchrow("SELECT status, error, payload FROM inbound_events WHERE id = $1",
                                      outcome["inbound_event_id"])
    assert row["payload"].encode() == raw
    if _expect_dead_letter(raw):
        assert row["status"] == "failed" and row["error"]


@EXAMPLES
@given(data=mutated_bodies(), ascii_only=st.booleans())
async def test_mutated_signed_fixture_bodies_never_cause_a_500(target, data, ascii_only):
    try:
        raw = json.dumps(data, ensure_ascii=ascii_only, separators=(",", ":")).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        raw = json.dumps(data).encode()
    await _post_and_check(target, raw)


@EXAMPLES
@given(data=json_values)
async def test_arbitrary_signed_json_never_causes_a_500(target, data):
    await _post_and_check(target, json.dumps(data).encode())


@EXAMPLES
@given(raw=st.binary(max_size=300))
async def test_arbitrary_signed_bytes_never_cause_a_500(target, raw):
    await _post_and_check(target, raw)
