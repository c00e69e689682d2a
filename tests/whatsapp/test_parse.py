from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from channels.whatsapp.parse import MalformedBody, decode_body, parse_body, parse_webhook
from schema.enums import MessageDirection, MessageStatus, MessageType
from schema.events import (
    InboundMessage,
    MessageDeletion,
    MessageEdit,
    ParsedPayload,
    ParseError,
    Reaction,
    StatusUpdate,
)
from tests.whatsapp.fixtures import PHONE_NUMBER_ID, body, own_fixture_names, peer_examples, raw

LENA = "DE.2384756109283746"


def only(name: str) -> InboundMessage:
    parsed = parse_body(raw(name))
    assert len(parsed.events) == 1
    event = parsed.events[0]
    assert isinstance(event, InboundMessage)
    assert event.channel_key == PHONE_NUMBER_ID
    return event


def test_a_text_message_is_keyed_on_the_user_id_with_the_wa_id_as_alias_and_phone():
    msg = only("text.json")
    assert msg.type is MessageType.TEXT
    assert msg.text == "Hallo, ist meine Bestellung 4711 schon unterwegs?"
    assert msg.direction is MessageDirection.INBOUND
    assert msg.contact.external_id == LENA
    assert msg.contact.aliases == ("4915112345678",)
    assert msg.contact.phone == "+4915112345678"
    assert msg.contact.name == "Lena Fischer"
    assert msg.occurred_at == datetime.fromtimestamp(1741952000, UTC)


def test_a_contact_without_user_id_is_keyed_on_the_wa_id():
    data = body("text.json")
    value = data["entry"][0]["changes"][0]["value"]
    del value["contacts"][0]["user_id"]
    del value["messages"][0]["from_user_id"]
    msg = parse_webhook(data).events[0]
    assert isinstance(msg, InboundMessage)
    assert msg.contact.external_id == "4915112345678"
    assert msg.contact.aliases == ()
    assert msg.contact.name == "Lena Fischer"


def test_an_image_carries_its_caption_and_a_media_ref_with_hex_sha256():
    msg = only("image.json")
    assert msg.type is MessageType.IMAGE
    assert msg.text == "Foto vom beschädigten Paket"
    (media,) = msg.media
    assert media.provider_id == "1123581321345589"
    assert media.mime_type == "image/jpeg"
    # The webhook's base64 digest equals the hex one the media endpoint announces.
    assert media.sha256 == json.loads(raw("api/media_get_response.json"))["sha256"]


def test_a_document_keeps_its_file_name():
    msg = only("document.json")
    assert msg.type is MessageType.DOCUMENT
    assert msg.text == "Rechnung"
    assert msg.media[0].name == "Rechnung_4711.pdf"
    assert msg.media[0].mime_type == "application/pdf"


def test_a_voice_note_is_audio_flagged_as_voice():
    msg = only("voice.json")
    assert msg.type is MessageType.AUDIO
    assert msg.text is None
    assert msg.extra["voice"] is True
    assert msg.media[0].provider_id == "3344556677889900"


def test_a_location_reads_as_its_name_and_keeps_coordinates():
    msg = only("location.json")
    assert msg.type is MessageType.LOCATION
    assert msg.text == "Packstation 112"
    assert msg.extra["location"]["latitude"] == 52.520008
    assert msg.extra["location"]["address"] == "Alexanderplatz 1, 10178 Berlin"


def test_a_reply_points_at_the_message_it_quotes():
    msg = only("reply_with_context.json")
    assert msg.reply_to_external_id == "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFG91dC0wMDAxRUFEMDY1RDI2OUY5AA=="
    assert msg.text == "Ja, DHL passt. Danke!"


def test_button_and_template_replies_read_as_the_chosen_title():
    interactive = only("interactive_button_reply.json")
    assert interactive.type is MessageType.INTERACTIVE
    assert interactive.text == "Sehr gut"
    assert interactive.extra["reply"]["id"] == "csat_5"
    template = only("button_template_reply.json")
    assert template.type is MessageType.INTERACTIVE
    assert template.text == "Bestätigen"
    assert template.extra["button"]["payload"] == "CONFIRM_DELIVERY_SLOT"
    assert template.reply_to_external_id is not None


def test_an_unknown_type_is_kept_as_unsupported_with_its_raw_part():
    msg = only("unsupported.json")
    assert msg.type is MessageType.UNSUPPORTED
    assert msg.raw is not None and msg.raw["type"] == "unsupported"
    assert msg.extra["errors"][0]["code"] == 131051


def test_reactions_target_the_original_message_and_an_empty_emoji_removes():
    added = parse_body(raw("reaction.json")).events[0]
    removed = parse_body(raw("reaction_removed.json")).events[0]
    assert isinstance(added, Reaction) and isinstance(removed, Reaction)
    assert added.external_id == removed.external_id
    assert added.emoji == "👍" and removed.emoji == ""
    assert added.sender == removed.sender == LENA


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("status_sent.json", MessageStatus.SENT),
        ("status_delivered.json", MessageStatus.DELIVERED),
        ("status_read.json", MessageStatus.READ),
    ],
)
def test_statuses_keep_the_providers_timestamp(name, status):
    (event,) = parse_body(raw(name)).events
    assert isinstance(event, StatusUpdate)
    assert event.status is status
    ts = int(body(name)["entry"][0]["changes"][0]["value"]["statuses"][0]["timestamp"])
    assert event.occurred_at == datetime.fromtimestamp(ts, UTC)
    assert event.error_code is None


def test_a_failed_status_keeps_the_error_code_as_a_string_and_a_readable_reason():
    (event,) = parse_body(raw("status_failed.json")).events
    assert isinstance(event, StatusUpdate)
    assert event.status is MessageStatus.FAILED
    assert event.error_code == "131047"
    assert event.error_message is not None
    assert event.error_message.startswith("Re-engagement message")
    assert "24 hours" in event.error_message


def test_every_change_message_and_status_of_a_batch_is_parsed_in_order():
    events = parse_body(raw("out_of_order_batch.json")).events
    assert [e.kind for e in events] == ["status", "status", "status", "message", "message", "message"]
    statuses = [e for e in events if isinstance(e, StatusUpdate)]
    assert [s.status for s in statuses] == [MessageStatus.READ, MessageStatus.DELIVERED, MessageStatus.SENT]
    texts = [e.text for e in events if isinstance(e, InboundMessage)]
    assert texts == ["segunda mensagem", "primeira mensagem", "Hallo, ist meine Bestellung 4711 schon unterwegs?"]
    joao = next(e for e in events if isinstance(e, InboundMessage))
    assert joao.contact.external_id == "BR.9182736450918273"
    assert joao.contact.name == "João Pereira"


def test_the_signed_raw_body_decodes_its_escapes():
    msg = parse_body(raw("signed/text_body.raw")).events[0]
    assert isinstance(msg, InboundMessage)
    assert msg.text == "Grüße aus Köln – 10/10 👍"


@pytest.mark.parametrize("name", own_fixture_names())
def test_every_own_fixture_parses_to_events_routed_by_phone_number_id(name):
    parsed = parse_body(raw(name))
    assert parsed.events and not parsed.ignored
    assert {e.channel_key for e in parsed.events} == {PHONE_NUMBER_ID}


def _peer(file: str, example: str) -> ParsedPayload:
    for f, name, data in peer_examples():
        if f == file and name == example:
            return parse_webhook(data)
    raise AssertionError(f"no example {file}:{example}")


@pytest.mark.parametrize(("file", "example", "data"), peer_examples(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_peer_example_parses_or_is_ignored_never_fails(file, example, data):
    parsed = parse_webhook(data)
    ignored_files = {
        "account_update.json", "call_connect.json", "call_status.json", "call_terminate.json",
        "call_permission_update.json", "system.json", "template_category_update.json",
        "template_components_update.json", "template_quality_update.json", "template_status_update.json",
        "user_marketing_preferences.json",
    }
    assert parsed.errors == ()
    if (file, example) == ("system.json", "phone_number_change"):
        # A changed number moves the contact's identity; it is not a message.
        assert [type(e).__name__ for e in parsed.events] == ["IdentityChange"]
    elif file in ignored_files:
        assert parsed.ignored and parsed.events == ()
    else:
        assert parsed.events and not parsed.ignored


def test_peer_media_with_a_url_keeps_it_and_a_placeholder_digest_is_dropped():
    msg = _peer("message.json", "media_with_url").events[0]
    assert isinstance(msg, InboundMessage)
    assert msg.media[0].url is not None and msg.media[0].url.startswith("https://lookaside.fbsbx.com/")
    assert msg.media[0].sha256 is None  # "4654+8g=" is not a sha256


def test_peer_video_sticker_and_contacts_are_typed():
    video = _peer("message.json", "video").events[0]
    sticker = _peer("message.json", "animated_sticker").events[0]
    cards = _peer("message.json", "contacts").events[0]
    assert isinstance(video, InboundMessage) and video.type is MessageType.VIDEO and video.text == "caption"
    assert isinstance(sticker, InboundMessage) and sticker.type is MessageType.STICKER
    assert sticker.extra["animated"] is True
    assert isinstance(cards, InboundMessage) and cards.type is MessageType.CONTACTS
    assert cards.text == "Chandler Bing, Monica, Rachel Green"


def test_peer_list_reply_and_flow_completion_are_interactive():
    listed = _peer("callback_selection.json", "description").events[0]
    flow = _peer("flow_completion.json", "completion").events[0]
    assert isinstance(listed, InboundMessage) and listed.text == "title"
    assert listed.extra["reply"]["description"] == "description"
    assert isinstance(flow, InboundMessage) and flow.type is MessageType.INTERACTIVE
    assert "flow_token" in flow.extra["flow"]["response_json"]


def test_a_reaction_without_emoji_is_a_removal():
    (event,) = _peer("message.json", "unreaction_no_emoji").events
    assert isinstance(event, Reaction) and event.emoji == ""


def test_edits_and_revokes_update_the_original_message():
    (edit,) = _peer("edited_message.json", "image").events
    (deletion,) = _peer("deleted_message.json", "revoke").events
    assert isinstance(edit, MessageEdit)
    assert edit.external_id == "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA="
    assert edit.text == "Updated image caption"
    assert isinstance(deletion, MessageDeletion)
    assert deletion.external_id == "<ORIGINAL_WHATSAPP_MESSAGE_ID>"


def test_business_side_echoes_are_outbound_messages_to_the_user():
    (echo,) = _peer("outgoing_message.json", "text").events
    assert isinstance(echo, InboundMessage)
    assert echo.direction is MessageDirection.OUTBOUND
    assert echo.text == "Test message"
    assert echo.contact.external_id == "<BSUID>"
    (edit,) = _peer("outgoing_message.json", "edit").events
    assert isinstance(edit, MessageEdit) and edit.text == "Text was edited"
    (deletion,) = _peer("outgoing_message.json", "delete").events
    assert isinstance(deletion, MessageDeletion) and deletion.external_id == "wamid.zzzzzz"


def test_played_ranks_as_its_own_status_and_group_statuses_parse():
    (played,) = _peer("message_status.json", "played").events
    (group,) = _peer("message_status.json", "group").events
    assert isinstance(played, StatusUpdate) and played.status is MessageStatus.PLAYED
    assert isinstance(group, StatusUpdate) and group.status is MessageStatus.READ


def test_a_body_mixing_ignored_and_conversation_changes_keeps_both_facts():
    data = body("text.json")
    data["entry"].append({"id": "1", "changes": [{"field": "account_update", "value": {"event": "X"}}]})
    parsed = parse_webhook(data)
    assert parsed.ignored is True
    assert len(parsed.events) == 1


def _unreadable_part(data) -> str:
    parsed = parse_webhook(data)
    assert parsed.events == () and len(parsed.errors) == 1
    return parsed.errors[0]


def test_a_status_without_a_message_id_is_an_error_of_that_part():
    data = body("status_read.json")
    del data["entry"][0]["changes"][0]["value"]["statuses"][0]["id"]
    assert "statuses[0].id" in _unreadable_part(data)


@pytest.mark.parametrize(
    "data",
    [
        [],
        "text",
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account"},
    ],
)
def test_bodies_that_cannot_be_normalised_are_parse_errors(data):
    with pytest.raises(ParseError):
        parse_webhook(data)


@pytest.mark.parametrize(
    "data",
    [
        {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": 3}]}]},
        {"object": "whatsapp_business_account",
         "entry": [{"changes": [{"field": "messages", "value": {"messages": [{"id": "x"}]}}]}]},
    ],
)
def test_a_change_that_cannot_be_normalised_is_an_error_of_that_part(data):
    assert _unreadable_part(data).startswith("entry[0].changes[0]")


def test_a_timestamp_out_of_range_is_an_error_of_that_message():
    data = body("text.json")
    data["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = "9" * 19
    assert "messages[0].timestamp" in _unreadable_part(data)


def test_a_string_postgres_cannot_store_is_replaced_not_a_parse_error():
    data = body("text.json")
    data["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "a\x00b\ud800"
    (message,) = parse_webhook(data).events
    assert message.text == "a\ufffdb\ufffd"


@pytest.mark.parametrize("text", [b"{", b"\xff\xfe", b"[NaN]", b"1e999", b"[" * 100_000])
def test_bytes_that_are_not_json_are_malformed_not_parse_errors(text):
    with pytest.raises(MalformedBody):
        decode_body(text)
    with pytest.raises(ParseError):
        parse_body(text)
