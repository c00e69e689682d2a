"""The client frame decoder (schema/ws.py): pure, no server."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schema.ws import (
    FrameError,
    PingFrame,
    SubscribeFrame,
    UnsubscribeFrame,
    parse_client_frame,
    parse_topic,
    parse_topics,
)


def test_a_subscribe_frame_with_after_is_decoded():
    frame = parse_client_frame('{"type": "subscribe", "topics": ["account", "conversation:12"], "after": 7}')
    assert frame == SubscribeFrame(type="subscribe", topics=["account", "conversation:12"], after=7)
    assert parse_client_frame('{"type": "subscribe", "topics": ["calls"]}').after is None


def test_unsubscribe_and_ping_are_decoded():
    assert parse_client_frame('{"type": "unsubscribe", "topics": ["calls"]}') == UnsubscribeFrame(
        type="unsubscribe", topics=["calls"]
    )
    assert parse_client_frame('{"type": "ping"}') == PingFrame(type="ping")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "malformed_frame"),
        ("{", "malformed_frame"),
        ('"ping"', "malformed_frame"),
        ("[" * 100_000, "malformed_frame"),
        ('{"type": "pong"}', "unknown_type"),
        ('{"type": null}', "unknown_type"),
        ('{"type": ["ping"]}', "unknown_type"),
        ('{"type": "subscribe", "topics": "account"}', "invalid_frame"),
        ('{"type": "subscribe", "topics": [1]}', "invalid_frame"),
        ('{"type": "subscribe", "topics": ["account"], "after": 1.5}', "invalid_frame"),
        ('{"type": "subscribe", "topics": ["account"], "after": true}', "invalid_frame"),
        ('{"type": "subscribe", "topics": ["account"], "after": 9223372036854775808}', "invalid_frame"),
        ('{"type": "subscribe", "topics": ' + json.dumps(["account"] * 101) + "}", "invalid_frame"),
    ],
)
def test_bad_frames_raise_a_frame_error_with_its_code(text, code):
    with pytest.raises(FrameError) as err:
        parse_client_frame(text)
    assert err.value.code == code
    assert err.value.frame().model_dump() == {"type": "error", "code": code, "message": err.value.message}


@given(st.text(max_size=200))
def test_any_text_either_decodes_or_raises_a_frame_error(text):
    try:
        parse_client_frame(text)
    except FrameError as exc:
        assert exc.code in {"malformed_frame", "unknown_type", "invalid_frame"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@given(st.sampled_from(["subscribe", "unsubscribe", "ping", "x"]), st.dictionaries(st.text(max_size=10), json_values))
def test_any_json_object_either_decodes_or_raises_a_frame_error(kind, fields):
    with contextlib.suppress(FrameError):
        parse_client_frame(json.dumps({**fields, "type": kind}))


@pytest.mark.parametrize("text", ["account", "calls", "conversation:1", "conversation:9223372036854775807"])
def test_topics_round_trip_through_their_text(text):
    assert str(parse_topic(text)) == text


@pytest.mark.parametrize(
    "text", ["", "Account", "conversation:", "conversation:0", "conversation:01", "conversation:-1", "conversation:1x",
             "calls ", "conversation:12345678901234567890"]
)
def test_unknown_topics_are_refused(text):
    with pytest.raises(ValueError):
        parse_topic(text)


def test_a_frame_with_one_bad_topic_is_refused_whole_and_duplicates_collapse():
    with pytest.raises(FrameError) as err:
        parse_topics(["account", "nope"])
    assert err.value.code == "invalid_topic"
    assert [str(t) for t in parse_topics(["calls", "calls", "account"])] == ["calls", "account"]


def test_topic_matching_follows_the_contract():
    account, calls, convo = parse_topic("account"), parse_topic("calls"), parse_topic("conversation:5")
    assert account.matches("message.created", None)
    assert calls.matches("call.ended", 5) and not calls.matches("message.created", 5)
    assert convo.matches("call.updated", 5) and not convo.matches("message.created", 6)
    assert not convo.matches("contact.updated", None)
