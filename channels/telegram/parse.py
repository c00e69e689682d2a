"""Telegram ``Update`` objects → normalised events (pure, no I/O).

One Update carries exactly one change. What each kind becomes:

- ``message`` / ``channel_post`` → :class:`InboundMessage`, ``external_id``
  ``"{chat_id}:{message_id}"`` (message ids repeat across chats);
- ``edited_message`` / ``edited_channel_post`` → :class:`MessageEdit` of that message;
- ``message_reaction`` → :class:`Reaction` on that message;
- ``my_chat_member`` whose new status is ``kicked`` in a private chat (the user
  blocked the bot) → :class:`ContactUnreachable`; other member changes are ignored;
- ``callback_query`` (an inline button press) → an ``interactive`` message in
  the button's chat, text = the button's title, ``external_id``
  ``"{chat_id}:cb{callback_query_id}"`` (the gateway answers the query after
  the commit, so the customer's client stops spinning);
- update kinds that are not conversation content (reaction counts, boosts,
  other members, polls, business connections…, see ``_service``) → ``ignored``;
- service messages: a group migrated to a supergroup → :class:`IdentityChange`
  (the conversation moves to the new chat id), a new group title →
  :class:`IdentityChange` renaming the group contact, the other notices
  (pins, forum topics, video chats, members joining or leaving…) → ``ignored``;
- any other kind that names a chat → an ``unsupported`` message with the raw
  update, ``external_id`` ``"{chat_id}:u{update_id}"``; one without a chat
  → ``ignored``: there is no conversation to attach it to.

Forum-topic messages keep their topic in ``extra["thread_id"]``; replies go
back to that topic. When python-telegram-bot refuses a shape (older or looser
than its classes), the message is read leniently from the raw JSON
(``_fallback``) rather than lost.

Private chats: the contact is the user (the chat id equals the user id). Groups,
supergroups and channels: the contact is the chat (named by its title) and
each message records its ``sender``.

The Update is decoded with python-telegram-bot's ``Update.de_json``; that
decoder trusts its input, so every field used here is checked again and
anything unusable (even leniently) raises :class:`ParseError`, never another exception.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pydantic import ValidationError
from telegram import Chat, Message, Update

from channels.telegram._content import date_field, full_name, int_field, message_content, opt_int, opt_str
from channels.telegram._fallback import lenient_edit, lenient_member_change, lenient_message
from channels.telegram._service import IGNORED_UPDATE_KINDS, service_payload
from schema import strict_json
from schema.enums import MessageType
from schema.events import (
    ContactRef,
    ContactUnreachable,
    InboundMessage,
    MessageEdit,
    NormalizedEvent,
    ParsedPayload,
    ParseError,
    Reaction,
    SenderRef,
)

_NEW_MESSAGE_KINDS = ("message", "channel_post")
_EDIT_KINDS = ("edited_message", "edited_channel_post")

# Update kinds the gateway asks for (setWebhook / getUpdates ``allowed_updates``).
ALLOWED_UPDATES: tuple[str, ...] = (
    *_NEW_MESSAGE_KINDS,
    *_EDIT_KINDS,
    "my_chat_member",
    "callback_query",
    "message_reaction",
)


def update_id_of(data: Any) -> int | None:
    """The Update's id (the dedup key), or None when the body has none."""
    if isinstance(data, dict):
        value = data.get("update_id")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def parse_body(body: str | bytes, *, received_at: datetime | None = None) -> ParsedPayload:
    """A raw webhook body or stored payload → events (``channels.base.PayloadParser``)."""
    try:
        data = strict_json.loads(body)
    except strict_json.JsonRejected as exc:
        raise ParseError(f"not JSON: {exc}") from None
    return parse_update(data, received_at=received_at)


def parse_update(data: Any, *, received_at: datetime | None = None) -> ParsedPayload:
    """One decoded Update → events. ``received_at`` dates updates that carry no date of their own."""
    if not isinstance(data, dict):
        raise ParseError("a Telegram Update must be a JSON object")
    update_id = update_id_of(data)
    if update_id is None:
        raise ParseError("update_id is missing or not an integer")
    kinds = [k for k in data if k != "update_id"]
    if kinds and kinds[0] in IGNORED_UPDATE_KINDS:
        return ParsedPayload(ignored=True)
    for kind in _NEW_MESSAGE_KINDS:
        if isinstance(data.get(kind), dict):
            service = service_payload(data[kind])
            if service is not None:
                return service
    try:
        return _strict(data, update_id, received_at or datetime.now(UTC))
    except ParseError:
        lenient = _lenient(data, update_id)
        if lenient is None:
            raise  # the strict reading's error says best what is wrong
        return lenient


def _strict(data: dict[str, Any], update_id: int, now: datetime) -> ParsedPayload:
    try:
        return _normalise(_decode(data), data, update_id, now)
    except ValidationError as exc:
        raise ParseError(f"update {update_id}: {exc.errors()[0]['msg']}") from exc


def _lenient(data: dict[str, Any], update_id: int) -> ParsedPayload | None:
    """The core fields of an update PTB refused; None when even those are unusable."""
    try:
        for kind in _NEW_MESSAGE_KINDS:
            if data.get(kind) is not None:
                return _one(lenient_message(data, kind, update_id))
        for kind in _EDIT_KINDS:
            if data.get(kind) is not None:
                return _one(lenient_edit(data, kind))
        if data.get("my_chat_member") is not None:
            return lenient_member_change(data)
    except (ParseError, ValidationError):
        return None
    return None


def callback_query_id(data: Any) -> str | None:
    """The id of the button press this raw update carries (to answer it), if any."""
    query = data.get("callback_query") if isinstance(data, dict) else None
    query_id = query.get("id") if isinstance(query, dict) else None
    return query_id if isinstance(query_id, str) and query_id else None


def _decode(data: dict[str, Any]) -> Update:
    try:
        update = Update.de_json(data, None)
    # de_json assumes well-formed input and fails in arbitrary ways otherwise
    # (KeyError, TypeError, AttributeError, OverflowError…): all mean "not an Update".
    except Exception as exc:
        raise ParseError(f"not a Telegram Update: {type(exc).__name__}: {exc}") from exc
    if not isinstance(update, Update):
        raise ParseError("not a Telegram Update")
    return update


def _normalise(update: Update, data: dict[str, Any], update_id: int, now: datetime) -> ParsedPayload:
    for kind in _NEW_MESSAGE_KINDS:
        if data.get(kind) is not None:
            return _one(_new_message(_as_message(getattr(update, kind), kind), data, update_id, kind))
    for kind in _EDIT_KINDS:
        if data.get(kind) is not None:
            return _one(_edit(_as_message(getattr(update, kind), kind)))
    if data.get("my_chat_member") is not None:
        return _member_change(update)
    if data.get("callback_query") is not None:
        return _callback(update, data, update_id, now)
    if data.get("message_reaction") is not None:
        return _reaction(update)
    return _other(update, data, update_id, now)


def _one(event: NormalizedEvent) -> ParsedPayload:
    return ParsedPayload(events=(event,))


def _as_message(value: object, kind: str) -> Message:
    if not isinstance(value, Message):
        raise ParseError(f"{kind}: not a message object")
    return value


# -- who ----------------------------------------------------------------------


def _chat_contact(chat: object) -> tuple[ContactRef, bool]:
    """The conversation's contact and whether the chat is a private one."""
    if not isinstance(chat, Chat):
        raise ParseError("chat is missing")
    chat_id = int_field(chat.id, "chat.id")
    if chat.type == Chat.PRIVATE:
        name = full_name(chat.first_name, chat.last_name) or opt_str(chat.username)
        return ContactRef(external_id=str(chat_id), name=name), True
    return ContactRef(external_id=str(chat_id), name=opt_str(chat.title) or opt_str(chat.username)), False


def _user_sender(user: object) -> SenderRef | None:
    user_id = opt_int(getattr(user, "id", None))
    if user is None or user_id is None:
        return None
    name = full_name(getattr(user, "first_name", None), getattr(user, "last_name", None))
    return SenderRef(external_id=str(user_id), name=name or opt_str(getattr(user, "username", None)))


def _message_sender(msg: Message) -> SenderRef | None:
    # Anonymous group admins and channel posts are sent "as" a chat.
    sender_chat = msg.sender_chat
    chat_id = opt_int(getattr(sender_chat, "id", None))
    if sender_chat is not None and chat_id is not None:
        name = opt_str(msg.author_signature) or opt_str(sender_chat.title) or opt_str(sender_chat.username)
        return SenderRef(external_id=str(chat_id), name=name)
    return _user_sender(msg.from_user)


def _external_id(chat_id: str, message_id: object) -> str:
    return f"{chat_id}:{int_field(message_id, 'message_id')}"


def _reply_to(msg: Message, chat_id: str) -> str | None:
    reply = msg.reply_to_message
    if reply is None:
        return None
    # In forum topics every message "replies" to the topic's opening service message.
    if msg.is_topic_message is True and reply.forum_topic_created is not None:
        return None
    reply_id = opt_int(reply.message_id)
    return f"{chat_id}:{reply_id}" if reply_id is not None else None


def _thread_id(msg: object) -> str | None:
    """The forum topic a message belongs to (replies go back to it)."""
    thread = opt_int(getattr(msg, "message_thread_id", None))
    return str(thread) if getattr(msg, "is_topic_message", None) is True and thread is not None else None


def _new_message(msg: Message, data: dict[str, Any], update_id: int, kind: str) -> InboundMessage:
    contact, private = _chat_contact(msg.chat)
    msg_type, text, media, extra = message_content(msg)
    raw_type: object = msg.chat.type
    chat_type = raw_type.value if isinstance(raw_type, Enum) else opt_str(raw_type)
    extra = {k: v for k, v in extra.items() if v is not None}
    extra.update({"update_id": update_id, "chat_type": chat_type})
    thread = _thread_id(msg)
    if thread is not None:
        extra["thread_id"] = thread
    if kind == "channel_post":
        extra["channel_post"] = True
    return InboundMessage(
        external_id=_external_id(contact.external_id, msg.message_id),
        contact=contact,
        sender=None if private else _message_sender(msg),
        type=msg_type,
        text=text,
        media=media,
        reply_to_external_id=_reply_to(msg, contact.external_id),
        occurred_at=date_field(msg.date, "date"),
        extra=extra,
        # Unsupported kinds keep the whole update so nothing is lost; for the
        # rest ``inbound_events.payload`` already holds it verbatim.
        raw=data if msg_type == MessageType.UNSUPPORTED else None,
    )


def _edit(msg: Message) -> MessageEdit:
    contact, _ = _chat_contact(msg.chat)
    edited_at = msg.edit_date if msg.edit_date is not None else msg.date
    text = opt_str(msg.text) if msg.text is not None else opt_str(msg.caption)
    return MessageEdit(
        external_id=_external_id(contact.external_id, msg.message_id),
        text=text,
        edited_at=date_field(edited_at, "edit_date"),
    )


def _member_change(update: Update) -> ParsedPayload:
    change = update.my_chat_member
    if change is None:
        raise ParseError("my_chat_member: not a member update")
    contact, private = _chat_contact(change.chat)
    status = getattr(change.new_chat_member, "status", None)
    if private and status == "kicked":
        blocked_at = date_field(change.date, "date")
        return _one(ContactUnreachable(contact=contact, reason="the user blocked the bot", occurred_at=blocked_at))
    # The bot added to or removed from a group, or unblocked: not conversation data.
    return ParsedPayload(ignored=True)


def _button_title(keyboard_message: object, data: str | None) -> str | None:
    markup = getattr(keyboard_message, "reply_markup", None)
    rows = getattr(markup, "inline_keyboard", None)
    if data is None or not isinstance(rows, tuple | list):
        return None
    for row in rows:
        for button in row if isinstance(row, tuple | list) else ():
            if getattr(button, "callback_data", None) == data:
                return opt_str(getattr(button, "text", None))
    return None


def _callback(update: Update, data: dict[str, Any], update_id: int, now: datetime) -> ParsedPayload:
    query = update.callback_query
    if query is None:
        raise ParseError("callback_query: not a callback query")
    keyboard_message = query.message
    if keyboard_message is None:  # a button under an inline-mode message: no chat
        return ParsedPayload(ignored=True)
    contact, private = _chat_contact(keyboard_message.chat)
    query_id = opt_str(query.id)
    if query_id is None:
        raise ParseError("callback_query: id missing")
    callback_data = opt_str(query.data)
    reply_to = opt_int(keyboard_message.message_id)
    title = _button_title(keyboard_message, callback_data)
    extra: dict[str, Any] = {
        "update_id": update_id,
        "update_kind": "callback_query",
        "callback_query_id": query_id,
        "callback_data": callback_data,
        # The same shape as a WhatsApp button reply.
        "reply": {"kind": "callback_query", "id": callback_data, "title": title},
    }
    thread = _thread_id(keyboard_message)
    if thread is not None:
        extra["thread_id"] = thread
    return _one(
        InboundMessage(
            external_id=f"{contact.external_id}:cb{query_id}",
            contact=contact,
            sender=None if private else _user_sender(query.from_user),
            type=MessageType.INTERACTIVE,
            text=title or callback_data,
            reply_to_external_id=f"{contact.external_id}:{reply_to}" if reply_to is not None else None,
            occurred_at=now,
            extra=extra,
        )
    )


def _reaction(update: Update) -> ParsedPayload:
    change = update.message_reaction
    if change is None:
        raise ParseError("message_reaction: not a reaction update")
    contact, _ = _chat_contact(change.chat)
    actor = change.user if change.user is not None else change.actor_chat
    actor_id = opt_int(getattr(actor, "id", None))
    if actor_id is None:
        raise ParseError("message_reaction: no user or actor_chat")
    emojis = [opt_str(getattr(r, "emoji", None)) for r in change.new_reaction or ()]
    emoji = next((e for e in emojis if e), None)  # custom/paid reactions have no emoji: a removal here
    return _one(
        Reaction(
            external_id=_external_id(contact.external_id, change.message_id),
            emoji=emoji,
            sender=str(actor_id),
            occurred_at=date_field(change.date, "date"),
        )
    )


def _other(update: Update, data: dict[str, Any], update_id: int, now: datetime) -> ParsedPayload:
    kinds = [k for k in data if k != "update_id"]
    try:
        chat = update.effective_chat
        user = update.effective_user
    except (AttributeError, TypeError):  # an unknown kind PTB cannot introspect
        chat, user = None, None
    if not isinstance(chat, Chat) or opt_int(chat.id) is None:
        return ParsedPayload(ignored=True)
    contact, private = _chat_contact(chat)
    date = next((getattr(getattr(update, k, None), "date", None) for k in kinds), None)
    return _one(
        InboundMessage(
            external_id=f"{contact.external_id}:u{update_id}",
            contact=contact,
            sender=None if private else _user_sender(user),
            type=MessageType.UNSUPPORTED,
            occurred_at=date_field(date, "date") if isinstance(date, datetime) else now,
            extra={"update_id": update_id, "update_kind": kinds[0] if kinds else None},
            raw=data,
        )
    )
