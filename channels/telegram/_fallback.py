"""Lenient parsing from the raw JSON, for shapes python-telegram-bot refuses (pure).

Telegram has sent, over the years, shapes looser than PTB's classes accept (an
audio or document without ``file_unique_id``, a banned member without
``until_date``). Losing the customer's message over a field we do not use is
worse than storing less of it: when strict parsing fails, the core fields —
chat, sender, date, text or caption, and file ids — are read here and the
message is kept (``unsupported`` when nothing else fits, with the raw update).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from channels.base import utc_from_epoch
from schema.enums import MessageType
from schema.events import (
    ContactRef,
    ContactUnreachable,
    InboundMessage,
    MediaRef,
    MessageEdit,
    ParsedPayload,
    ParseError,
    SenderRef,
)

# Media fields in the order strict parsing checks them (GIFs carry a document too).
_MEDIA: tuple[tuple[str, MessageType], ...] = (
    ("animation", MessageType.VIDEO),
    ("photo", MessageType.IMAGE),
    ("video", MessageType.VIDEO),
    ("video_note", MessageType.VIDEO),
    ("voice", MessageType.AUDIO),
    ("audio", MessageType.AUDIO),
    ("document", MessageType.DOCUMENT),
    ("sticker", MessageType.STICKER),
)


def _obj(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParseError(f"{field}: expected an object")
    return value


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _name(person: dict[str, Any]) -> str | None:
    parts = [p for p in (_str(person.get("first_name")), _str(person.get("last_name"))) if p]
    return " ".join(parts) or _str(person.get("username"))


def raw_chat(value: Any) -> tuple[ContactRef, bool]:
    chat = _obj(value, "chat")
    chat_id = _int(chat.get("id"))
    if chat_id is None:
        raise ParseError("chat.id: expected an integer")
    if chat.get("type") == "private":
        return ContactRef(external_id=str(chat_id), name=_name(chat)), True
    return ContactRef(external_id=str(chat_id), name=_str(chat.get("title")) or _str(chat.get("username"))), False


def _sender(msg: dict[str, Any]) -> SenderRef | None:
    for field in ("sender_chat", "from"):
        who = msg.get(field)
        if isinstance(who, dict) and _int(who.get("id")) is not None:
            name = _str(who.get("title")) or _name(who)
            return SenderRef(external_id=str(who["id"]), name=name)
    return None


def _media(msg: dict[str, Any]) -> tuple[MessageType, tuple[MediaRef, ...]] | None:
    for field, kind in _MEDIA:
        part = msg.get(field)
        if field == "photo" and isinstance(part, list) and part:
            part = part[-1]  # sizes come smallest first
        if isinstance(part, dict) and _str(part.get("file_id")):
            return kind, (MediaRef(provider_id=part["file_id"], mime_type=_str(part.get("mime_type")),
                                   name=_str(part.get("file_name")), size=_int(part.get("file_size"))),)
    return None


def _external_id(chat_id: str, msg: dict[str, Any]) -> str:
    message_id = _int(msg.get("message_id"))
    if message_id is None:
        raise ParseError("message_id: expected an integer")
    return f"{chat_id}:{message_id}"


def lenient_message(data: dict[str, Any], kind: str, update_id: int) -> InboundMessage:
    msg = _obj(data.get(kind), kind)
    contact, private = raw_chat(msg.get("chat"))
    text = _str(msg.get("text"))
    caption = _str(msg.get("caption"))
    found = None if text is not None else _media(msg)
    msg_type = MessageType.TEXT if text is not None else (found[0] if found else MessageType.UNSUPPORTED)
    chat = _obj(msg.get("chat"), "chat")
    extra: dict[str, Any] = {"update_id": update_id, "chat_type": _str(chat.get("type")), "lenient": True}
    thread = _int(msg.get("message_thread_id"))
    if msg.get("is_topic_message") is True and thread is not None:
        extra["thread_id"] = str(thread)
    if kind == "channel_post":
        extra["channel_post"] = True
    reply = msg.get("reply_to_message")
    reply_id = _int(reply.get("message_id")) if isinstance(reply, dict) else None
    return InboundMessage(
        external_id=_external_id(contact.external_id, msg),
        contact=contact,
        sender=None if private else _sender(msg),
        type=msg_type,
        text=text or caption,
        media=found[1] if found else (),
        reply_to_external_id=f"{contact.external_id}:{reply_id}" if reply_id is not None else None,
        occurred_at=utc_from_epoch(msg.get("date"), field="date"),
        extra=extra,
        raw=data,
    )


def lenient_edit(data: dict[str, Any], kind: str) -> MessageEdit:
    msg = _obj(data.get(kind), kind)
    contact, _ = raw_chat(msg.get("chat"))
    edited = msg.get("edit_date") if msg.get("edit_date") is not None else msg.get("date")
    return MessageEdit(
        external_id=_external_id(contact.external_id, msg),
        text=_str(msg.get("text")) or _str(msg.get("caption")),
        edited_at=utc_from_epoch(edited, field="edit_date"),
    )


def lenient_member_change(data: dict[str, Any]) -> ParsedPayload:
    change = _obj(data.get("my_chat_member"), "my_chat_member")
    contact, private = raw_chat(change.get("chat"))
    member = change.get("new_chat_member")
    if private and isinstance(member, dict) and member.get("status") == "kicked":
        at: datetime = utc_from_epoch(change.get("date"), field="date")
        return ParsedPayload(events=(ContactUnreachable(contact=contact, reason="the user blocked the bot",
                                                        occurred_at=at),))
    return ParsedPayload(ignored=True)
