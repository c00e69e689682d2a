from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.telegram.parse import callback_query_id, parse_body, parse_update, update_id_of
from schema.enums import MessageType
from schema.events import ContactUnreachable, InboundMessage, MessageEdit, ParsedPayload, ParseError, Reaction

FIXTURES = Path(__file__).parent.parent / "fixtures" / "telegram"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def only_message(update: dict[str, Any]) -> InboundMessage:
    parsed = parse_update(update, received_at=NOW)
    assert len(parsed.events) == 1
    event = parsed.events[0]
    assert isinstance(event, InboundMessage)
    return event


def test_a_private_text_message_is_from_the_user_with_a_chat_scoped_external_id():
    msg = only_message(load("text_message"))
    assert msg.external_id == "521937406:1842"
    assert msg.contact.external_id == "521937406"
    assert msg.contact.name == "Maya Cohen"
    assert msg.sender is None
    assert msg.type == MessageType.TEXT
    assert msg.text == "Hi, I was charged twice for order #A-1029"
    assert msg.occurred_at == datetime.fromtimestamp(1741953000, UTC)
    assert msg.raw is None


def test_a_photo_keeps_only_the_largest_size_and_its_caption():
    msg = only_message(load("photo_with_caption"))
    assert msg.type == MessageType.IMAGE
    assert msg.text == "Bank statement showing both charges"
    assert [m.provider_id for m in msg.media] == ["AgACCAgIAAxkBAAIH0004WfApN9zDQJT-E_wOPK-1E08w"]
    assert msg.media[0].size == 151662


def test_the_largest_photo_wins_even_when_sizes_arrive_out_of_order():
    update = load("photo_with_caption")
    update["message"]["photo"].reverse()
    assert only_message(update).media[0].provider_id == "AgACCAgIAAxkBAAIH0004WfApN9zDQJT-E_wOPK-1E08w"


def test_a_document_carries_its_name_mime_type_and_caption():
    msg = only_message(load("document"))
    assert msg.type == MessageType.DOCUMENT
    assert msg.text == "Full statement"
    media = msg.media[0]
    assert (media.name, media.mime_type, media.size) == ("statement-march.pdf", "application/pdf", 204877)


def test_a_voice_note_is_audio_marked_as_voice():
    msg = only_message(load("voice"))
    assert msg.type == MessageType.AUDIO
    assert msg.media[0].mime_type == "audio/ogg"
    assert msg.extra["voice"] is True
    assert msg.text is None


def test_a_reply_points_at_the_replied_message_in_the_same_chat():
    msg = only_message(load("reply"))
    assert msg.reply_to_external_id == "521937406:1845"
    assert msg.text == "TX-99812"


def test_a_group_message_belongs_to_the_group_and_records_its_sender():
    msg = only_message(load("group_message"))
    assert msg.external_id == "-1002143658709:90211"
    assert msg.contact.external_id == "-1002143658709"
    assert msg.contact.name == "Acme Wholesale Partners"
    assert msg.sender is not None
    assert (msg.sender.external_id, msg.sender.name) == ("6150227391", "Kai")
    assert msg.extra["chat_type"] == "supergroup"


def test_an_edited_message_becomes_an_edit_of_the_original_dated_by_edit_date():
    parsed = parse_update(load("edited_message"))
    (edit,) = parsed.events
    assert isinstance(edit, MessageEdit)
    assert edit.external_id == "521937406:1842"
    assert edit.text == "Hi, I was charged twice for order #A-1029 (card ending 4417)"
    assert edit.edited_at == datetime.fromtimestamp(1741953067, UTC)


def test_an_edited_caption_is_the_new_text():
    update = load("photo_with_caption")
    update["edited_message"] = update.pop("message")
    update["edited_message"]["caption"] = "new caption"
    update["edited_message"]["edit_date"] = 1741953099
    (edit,) = parse_update(update).events
    assert isinstance(edit, MessageEdit)
    assert edit.text == "new caption"


def test_a_user_blocking_the_bot_makes_the_contact_unreachable():
    (event,) = parse_update(load("my_chat_member_blocked")).events
    assert isinstance(event, ContactUnreachable)
    assert event.contact.external_id == "521937406"
    assert "blocked" in event.reason
    assert event.occurred_at == datetime.fromtimestamp(1741953400, UTC)


def test_the_bot_being_added_to_a_group_is_ignored():
    update = load("my_chat_member_blocked")
    change = update["my_chat_member"]
    change["chat"] = {"id": -100123, "title": "Team", "type": "supergroup"}
    change["old_chat_member"]["status"] = "left"
    change["new_chat_member"]["status"] = "member"
    assert parse_update(update) == ParsedPayload(ignored=True)


def test_a_button_press_is_an_interactive_message_titled_by_the_button():
    update = load("callback_query")
    msg = only_message(update)
    assert msg.type == MessageType.INTERACTIVE
    assert msg.external_id == "521937406:cb2241742958113270611"
    assert msg.text == "Yes"
    assert msg.extra["reply"] == {"kind": "callback_query", "id": "csat:yes:1842", "title": "Yes"}
    assert msg.extra["callback_query_id"] == "2241742958113270611"
    assert msg.reply_to_external_id == "521937406:1849"
    assert msg.occurred_at == NOW
    assert callback_query_id(update) == "2241742958113270611"


def test_a_channel_post_belongs_to_the_channel_and_is_signed_by_its_author():
    update = {
        "update_id": 5,
        "channel_post": {
            "message_id": 7,
            "sender_chat": {"id": -100777, "title": "Acme News", "type": "channel"},
            "author_signature": "Dana",
            "chat": {"id": -100777, "title": "Acme News", "type": "channel"},
            "date": 1741953000,
            "text": "We are back online",
        },
    }
    msg = only_message(update)
    assert msg.external_id == "-100777:7"
    assert msg.contact.name == "Acme News"
    assert msg.sender is not None
    assert msg.sender.name == "Dana"
    assert msg.extra["channel_post"] is True


def test_an_edited_channel_post_is_an_edit():
    update = {
        "update_id": 6,
        "edited_channel_post": {
            "message_id": 7,
            "chat": {"id": -100777, "title": "Acme News", "type": "channel"},
            "date": 1741953000,
            "edit_date": 1741953100,
            "text": "We are back online!",
        },
    }
    (edit,) = parse_update(update).events
    assert isinstance(edit, MessageEdit)
    assert edit.external_id == "-100777:7"


def _private(message: dict[str, Any], update_id: int = 9) -> dict[str, Any]:
    base = load("text_message")
    body = base["message"]
    del body["text"]
    body.update(message)
    return {"update_id": update_id, "message": body}


@pytest.mark.parametrize(
    ("content", "expected_type", "mime"),
    [
        ({"audio": {"file_id": "A1", "file_unique_id": "u", "duration": 3, "title": "Song"}}, MessageType.AUDIO,
         "audio/mpeg"),
        ({"video": {"file_id": "V1", "file_unique_id": "u", "width": 1, "height": 1, "duration": 2}},
         MessageType.VIDEO, "video/mp4"),
        ({"video_note": {"file_id": "N1", "file_unique_id": "u", "length": 1, "duration": 2}}, MessageType.VIDEO,
         "video/mp4"),
        ({"sticker": {"file_id": "S1", "file_unique_id": "u", "type": "regular", "width": 512, "height": 512,
                      "is_animated": False, "is_video": False, "emoji": "🙂"}}, MessageType.STICKER, "image/webp"),
        ({"animation": {"file_id": "G1", "file_unique_id": "u", "width": 1, "height": 1, "duration": 1},
          "document": {"file_id": "G1", "file_unique_id": "u"}}, MessageType.VIDEO, "video/mp4"),
    ],
)
def test_media_kinds_map_to_message_types(content, expected_type, mime):
    msg = only_message(_private(content))
    assert msg.type == expected_type
    assert msg.media[0].mime_type == mime


def test_a_location_has_coordinates_and_a_venue_its_name_and_address():
    loc = only_message(_private({"location": {"latitude": 52.5, "longitude": 13.4}}))
    assert loc.type == MessageType.LOCATION
    assert loc.text is None
    assert (loc.extra["latitude"], loc.extra["longitude"]) == (52.5, 13.4)
    venue = only_message(_private({
        "location": {"latitude": 52.5, "longitude": 13.4},
        "venue": {"location": {"latitude": 52.5, "longitude": 13.4}, "title": "Acme HQ", "address": "Main St 1"},
    }))
    assert venue.text == "Acme HQ, Main St 1"


def test_a_shared_contact_is_a_contacts_message():
    msg = only_message(_private({"contact": {"phone_number": "+4915112345", "first_name": "Lea", "user_id": 42}}))
    assert msg.type == MessageType.CONTACTS
    assert msg.extra["contacts"] == [{"name": "Lea", "phone": "+4915112345", "user_id": 42}]


def test_an_unknown_message_kind_is_unsupported_and_keeps_the_raw_update():
    update = _private({"dice": {"emoji": "🎲", "value": 4}})
    msg = only_message(update)
    assert msg.type == MessageType.UNSUPPORTED
    assert msg.raw == update


def test_a_reaction_updates_the_target_message():
    update = {
        "update_id": 11,
        "message_reaction": {
            "chat": {"id": 521937406, "first_name": "Maya", "type": "private"},
            "message_id": 1850,
            "user": {"id": 521937406, "is_bot": False, "first_name": "Maya"},
            "date": 1741953600,
            "old_reaction": [],
            "new_reaction": [{"type": "emoji", "emoji": "👍"}],
        },
    }
    (event,) = parse_update(update).events
    assert isinstance(event, Reaction)
    assert (event.external_id, event.emoji, event.sender) == ("521937406:1850", "👍", "521937406")


def test_another_update_kind_with_a_chat_is_unsupported_in_that_chat():
    update = {
        "update_id": 12,
        "chat_join_request": {
            "chat": {"id": -100555, "title": "Partners", "type": "supergroup"},
            "from": {"id": 77, "is_bot": False, "first_name": "Ola"},
            "user_chat_id": 77,
            "date": 1741953700,
        },
    }
    msg = only_message(update)
    assert msg.type == MessageType.UNSUPPORTED
    assert msg.external_id == "-100555:u12"
    assert msg.extra["update_kind"] == "chat_join_request"
    assert msg.raw == update


def test_an_update_without_a_chat_is_ignored():
    update = {
        "update_id": 13,
        "inline_query": {"id": "q1", "from": {"id": 77, "is_bot": False, "first_name": "Ola"}, "query": "x",
                         "offset": ""},
    }
    assert parse_update(update) == ParsedPayload(ignored=True)
    assert parse_update({"update_id": 14}) == ParsedPayload(ignored=True)


@pytest.mark.parametrize(
    "body",
    [
        "[]",
        '"text"',
        "{}",
        '{"update_id": "1"}',
        '{"update_id": true}',
        '{"update_id": 1, "message": "x"}',
        '{"update_id": 1, "message": {"chat": {"id": 1, "type": "private"}}}',
        '{"update_id": 1, "message": {"message_id": 1, "date": "x", "chat": {"id": 1, "type": "private"}}}',
        '{"update_id": 1, "message": {"message_id": "1", "date": 1, "chat": {"id": 1, "type": "private"}}}',
        '{"update_id": 1, "message": {"message_id": 1, "date": 1e30, "chat": {"id": 1, "type": "private"}}}',
        '{"update_id": 1, "message": {"message_id": 1, "date": 1, "chat": {"id": "a", "type": "private"}}}',
        "not json",
    ],
)
def test_malformed_updates_raise_parse_error(body):
    with pytest.raises(ParseError):
        parse_body(body)


def test_the_update_id_is_the_dedup_key_when_present():
    assert update_id_of(load("text_message")) == 804211730
    assert update_id_of({"update_id": "7"}) is None
    assert update_id_of([]) is None


# -- property: arbitrary input never escapes as anything but ParseError -------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def _mutations(template: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Real updates with one field somewhere replaced by arbitrary JSON: reaches the deep paths."""
    paths: list[tuple[str, ...]] = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                paths.append((*path, key))
                walk(value, (*path, key))

    walk(template, ())

    @st.composite
    def mutate(draw: st.DrawFn) -> dict[str, Any]:
        doc = copy.deepcopy(template)
        path = draw(st.sampled_from(paths))
        node = doc
        for key in path[:-1]:
            node = node[key]
        if draw(st.booleans()):
            node[path[-1]] = draw(json_values)
        else:
            del node[path[-1]]
        return doc

    return mutate()


ALL_FIXTURES = [
    load(p.stem) for p in sorted(FIXTURES.glob("*.json"))
]


def _never_crashes(value: Any) -> None:
    try:
        result = parse_update(value, received_at=NOW)
    except ParseError:
        return
    assert isinstance(result, ParsedPayload)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_json_yields_events_or_a_parse_error(value):
    _never_crashes(value)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(*[_mutations(f) for f in ALL_FIXTURES]))
def test_damaged_real_updates_yield_events_or_a_parse_error(value):
    _never_crashes(value)
