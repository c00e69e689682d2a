from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.whatsapp.parse import parse_body, parse_webhook
from schema import strict_json
from schema.events import InboundMessage, ParsedPayload, ParseError
from tests.whatsapp.strategies import json_values, mutated_bodies

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _outcome(call, *args):
    try:
        result = call(*args)
    except ParseError:
        return None
    assert isinstance(result, ParsedPayload)
    return result


@FAST
@given(json_values)
def test_arbitrary_json_parses_or_raises_parse_error_only(data):
    _outcome(parse_webhook, data)


@FAST
@given(mutated_bodies())
def test_mutated_fixture_bodies_parse_or_raise_parse_error_only(data):
    result = _outcome(parse_webhook, data)
    if result is not None:
        for event in result.events:
            # What reaches the database is storable: re-encoding never fails.
            json.dumps(event.model_dump(mode="json")).encode("utf-8")
            if isinstance(event, InboundMessage):
                assert event.channel_key


@FAST
@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_parse_error_only(raw):
    _outcome(parse_body, raw)


@FAST
@given(mutated_bodies())
def test_the_serialised_form_of_a_mutated_body_parses_the_same_way(data):
    # parse_body (used by replay) agrees with parse_webhook on what the webhook decoded.
    try:
        text = json.dumps(data, allow_nan=False)
    except ValueError:
        return
    try:
        decoded = strict_json.loads(text)  # what the webhook route decodes with
    except strict_json.JsonRejected:
        assert _outcome(parse_body, text) is None  # refused alike: a ParseError, never a crash
        return
    assert _outcome(parse_body, text) == _outcome(parse_webhook, decoded)
