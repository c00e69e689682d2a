"""WhatsApp Cloud API webhook bodies → normalised events. Pure: no I/O.

A body is ``{"object": "whatsapp_business_account", "entry": [...]}``; every
entry, change, message, echo and status in it is parsed, not only the first.
Each event carries ``channel_key = metadata.phone_number_id`` so ingest routes
it to the account's channel with that number.

- ``field: messages`` — inbound ``messages`` and delivery ``statuses``;
- ``field: smb_message_echoes`` — ``message_echoes``: sends made on the business
  side (another device or the API), stored as outbound messages;
- every other field (calls, account, template, user preference notices) is
  valid traffic that is not conversation data: the payload is ``ignored``.

Each change, message and status is parsed on its own: one that cannot be
normalised is recorded in ``ParsedPayload.errors`` (the payload becomes a
replayable dead letter) while its neighbours are applied. Only a body that is
not a WhatsApp webhook at all raises :class:`schema.events.ParseError`.
Unknown message types are not errors: they become ``unsupported`` messages
that keep their raw part. ``system`` notices are not messages: a changed
number or user id becomes an :class:`IdentityChange` of the contact, any
other notice is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from pydantic import ValidationError

from channels.base import utc_from_epoch
from channels.whatsapp._content import collect_errors, message_content
from channels.whatsapp._json import (
    JsonObj,
    MalformedBody,
    array,
    decode_body,
    ident,
    obj,
    opt_array,
    opt_ident,
    opt_obj,
    opt_string,
)
from schema.enums import MessageDirection, MessageStatus
from schema.events import (
    ContactRef,
    IdentityChange,
    InboundMessage,
    MessageDeletion,
    MessageEdit,
    NormalizedEvent,
    ParsedPayload,
    ParseError,
    Reaction,
    SenderRef,
    StatusUpdate,
)
from schema.text import storable

__all__ = ["MalformedBody", "decode_body", "parse_body", "parse_webhook"]

OBJECT = "whatsapp_business_account"
_MESSAGES_FIELD = "messages"
_ECHOES_FIELD = "smb_message_echoes"

_STATUSES = {
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.READ,
    "played": MessageStatus.PLAYED,
    "failed": MessageStatus.FAILED,
}

# Who reacted when the business itself reacts (an echo).
BUSINESS_SENDER = "business"


def parse_body(body: bytes | str) -> ParsedPayload:
    """Parse a stored raw body (``replay`` uses this): not-JSON is a ParseError here."""
    try:
        data = decode_body(body)
    except MalformedBody as exc:
        raise ParseError(str(exc)) from exc
    return parse_webhook(data)


def parse_webhook(data: Any) -> ParsedPayload:
    """Parse a decoded webhook body. Raises ParseError, never anything else."""
    try:
        return _parse(data)
    except ValidationError as exc:
        raise ParseError(f"a field has an unexpected shape: {exc.errors()[0]['msg']}") from exc


@dataclass
class _Result:
    events: list[NormalizedEvent] = field(default_factory=list)
    ignored: bool = False
    errors: list[str] = field(default_factory=list)

    def part(self, parse: Callable[[], None]) -> None:
        """Parse one part; what it cannot read is recorded as an error, not raised."""
        try:
            parse()
        except ParseError as exc:
            self.errors.append(str(exc))
        except ValidationError as exc:
            self.errors.append(f"a field has an unexpected shape: {exc.errors()[0]['msg']}")


def _parse(data: Any) -> ParsedPayload:
    # NUL and lone surrogates (PostgreSQL refuses both) become U+FFFD: the message is kept, not dead-lettered.
    data = storable(data)
    root = obj(data, "body")
    if root.get("object") != OBJECT:
        raise ParseError(f"body: object is {str(root.get('object'))[:60]!r}, not {OBJECT!r}")
    result = _Result()
    for i, entry in enumerate(array(root.get("entry"), "entry")):
        result.part(partial(_parse_entry, entry, f"entry[{i}]", result))
    return ParsedPayload(events=tuple(result.events), ignored=result.ignored or not result.events,
                         errors=tuple(result.errors))


def _parse_entry(entry: Any, where: str, result: _Result) -> None:
    for j, change in enumerate(opt_array(obj(entry, where).get("changes"), f"{where}.changes")):
        result.part(partial(_parse_change, change, f"{where}.changes[{j}]", result))


def _parse_change(change: Any, where: str, result: _Result) -> None:
    change_obj = obj(change, where)
    kind = change_obj.get("field")
    if kind in (_MESSAGES_FIELD, _ECHOES_FIELD):
        value = obj(change_obj.get("value"), f"{where}.value")
        _parse_value(value, f"{where}.value", echoes=kind == _ECHOES_FIELD, into=result)
    else:
        result.ignored = True


@dataclass(frozen=True)
class _Person:
    wa_id: str | None
    user_id: str | None
    name: str | None


class _Directory:
    """The ``contacts`` of a change value, found by wa_id or by user id (BSUID)."""

    def __init__(self, value: Any, where: str) -> None:
        self._by_wa: dict[str, _Person] = {}
        self._by_user: dict[str, _Person] = {}
        for i, item in enumerate(opt_array(value, where)):
            card = obj(item, f"{where}[{i}]")
            profile = opt_obj(card.get("profile"), f"{where}[{i}].profile")
            person = _Person(
                wa_id=opt_ident(card.get("wa_id"), f"{where}[{i}].wa_id"),
                user_id=opt_ident(card.get("user_id"), f"{where}[{i}].user_id"),
                name=opt_string(profile.get("name"), f"{where}[{i}].profile.name"),
            )
            if person.wa_id:
                self._by_wa[person.wa_id] = person
            if person.user_id:
                self._by_user[person.user_id] = person

        people = {*self._by_wa.values(), *self._by_user.values()}
        self._only = next(iter(people)) if len(people) == 1 else None

    def contact(self, wa_id: str | None, user_id: str | None, where: str) -> ContactRef:
        """Keyed on the user id when there is one, the wa_id otherwise; the wa_id kept as alias and phone.

        A message that names nobody belongs to the change's only contact, when there is exactly one.
        """
        if wa_id is None and user_id is None and self._only is not None:
            wa_id, user_id = self._only.wa_id, self._only.user_id
        known = (self._by_user.get(user_id) if user_id else None) or (self._by_wa.get(wa_id) if wa_id else None)
        if known is not None:
            wa_id = wa_id or known.wa_id
            user_id = user_id or known.user_id
        key = user_id or wa_id
        if key is None:
            raise ParseError(f"{where}: no wa_id or user id for the contact")
        return ContactRef(
            external_id=key,
            name=known.name if known else None,
            phone=f"+{wa_id}" if wa_id and wa_id.isascii() and wa_id.isdigit() else None,
            aliases=(wa_id,) if user_id and wa_id and wa_id != user_id else (),
        )


def _parse_value(value: JsonObj, where: str, *, echoes: bool, into: _Result) -> None:
    messages = opt_array(value.get("message_echoes" if echoes else "messages"), f"{where}.messages")
    statuses = [] if echoes else opt_array(value.get("statuses"), f"{where}.statuses")
    if not messages and not statuses:
        # e.g. a change that only reports errors: provider traffic, no conversation data.
        into.ignored = True
        return
    metadata = obj(value.get("metadata"), f"{where}.metadata")
    key = ident(metadata.get("phone_number_id"), f"{where}.metadata.phone_number_id")
    directory = _Directory(value.get("contacts"), f"{where}.contacts")
    value_errors = collect_errors(value.get("errors"), f"{where}.errors")
    for k, msg in enumerate(messages):
        into.part(partial(_parse_message, msg, f"{where}.messages[{k}]", key=key, directory=directory,
                          echo=echoes, value_errors=value_errors, into=into))
    for k, status in enumerate(statuses):
        into.part(partial(_parse_status, status, f"{where}.statuses[{k}]", key=key, into=into))


def _parse_message(part: Any, where: str, *, key: str, directory: _Directory, echo: bool,
                   value_errors: list[Any], into: _Result) -> None:
    msg = obj(part, where)
    external_id = ident(msg.get("id"), f"{where}.id")
    at = utc_from_epoch(msg.get("timestamp"), field=f"{where}.timestamp")
    kind = msg.get("type")
    if kind == "revoke":
        revoke = obj(msg.get("revoke"), f"{where}.revoke")
        target = ident(revoke.get("original_message_id"), f"{where}.revoke.original_message_id")
        into.events.append(MessageDeletion(channel_key=key, external_id=target, deleted_at=at))
        return
    if kind == "edit":
        into.events.append(_edit(msg, where, key=key, at=at))
        return
    if kind == "system":
        # Before any contact lookup: a notice may name no sender at all.
        change = _identity_change(msg, where, key=key, at=at)
        if change is None:
            into.ignored = True
        else:
            into.events.append(change)
        return
    if echo:
        person = directory.contact(opt_ident(msg.get("to"), f"{where}.to"),
                                   opt_ident(msg.get("to_user_id"), f"{where}.to_user_id"), where)
    else:
        person = directory.contact(opt_ident(msg.get("from"), f"{where}.from"),
                                   opt_ident(msg.get("from_user_id"), f"{where}.from_user_id"), where)
    if kind == "reaction":
        reactor = BUSINESS_SENDER if echo else person.external_id
        into.events.append(_reaction(msg, where, key=key, at=at, sender=reactor))
        return
    content = message_content(msg, where)
    if content is None:
        into.ignored = True
        return
    contact: ContactRef = person
    sender: SenderRef | None = None
    group_id = opt_ident(msg.get("group_id"), f"{where}.group_id")
    if group_id is not None:
        # A group message: the conversation is with the group, the person is its author.
        contact = ContactRef(external_id=group_id)
        sender = SenderRef(external_id=person.external_id, name=person.name)
    context = opt_obj(msg.get("context"), f"{where}.context")
    extra = dict(content.extra)
    for flag in ("forwarded", "frequently_forwarded"):
        if context.get(flag) is True:
            extra[flag] = True
    errors = collect_errors(msg.get("errors"), f"{where}.errors") or value_errors
    if errors:
        extra["errors"] = errors
    if isinstance(msg.get("referral"), dict):
        extra["referral"] = msg["referral"]
    into.events.append(InboundMessage(
        channel_key=key,
        external_id=external_id,
        direction=MessageDirection.OUTBOUND if echo else MessageDirection.INBOUND,
        contact=contact,
        sender=sender,
        type=content.type,
        text=content.text,
        media=content.media,
        reply_to_external_id=opt_ident(context.get("id"), f"{where}.context.id"),
        occurred_at=at,
        extra=extra,
        raw=msg if content.keep_raw else None,
    ))


_NUMBER_CHANGED = "user_changed_number"
_USER_ID_CHANGED = "user_changed_user_id"


def _identity_change(msg: JsonObj, where: str, *, key: str, at: datetime) -> IdentityChange | None:
    """A changed phone number or business-scoped user id; None for every other system notice."""
    system = opt_obj(msg.get("system"), f"{where}.system")
    kind = opt_string(system.get("type"), f"{where}.system.type")
    if kind not in (_NUMBER_CHANGED, _USER_ID_CHANGED):
        return None  # e.g. customer_identity_changed (a new device key): nothing to store
    old_wa = opt_ident(msg.get("from"), f"{where}.from")
    known = [i for i in (
        old_wa,
        opt_ident(msg.get("from_user_id"), f"{where}.from_user_id"),
        opt_ident(system.get("previous_user_id"), f"{where}.system.previous_user_id"),
    ) if i]
    new_wa = (opt_ident(system.get("wa_id"), f"{where}.system.wa_id")
              or opt_ident(system.get("new_wa_id"), f"{where}.system.new_wa_id")) if kind == _NUMBER_CHANGED else None
    new_ids = [i for i in (new_wa, opt_ident(system.get("user_id"), f"{where}.system.user_id")) if i]
    if not known or not new_ids:
        return None  # nothing to connect: no contact of ours can be moved
    # The old number may be given to someone else; old user ids are never reused, so they stay
    # to thread late deliveries.
    retired = (old_wa,) if new_wa and old_wa and old_wa != new_wa else ()
    return IdentityChange(
        channel_key=key,
        known_ids=tuple(known),
        new_ids=tuple(new_ids),
        retired_ids=retired,
        phone=f"+{new_wa}" if new_wa and new_wa.isascii() and new_wa.isdigit() else None,
        occurred_at=at,
    )


def _reaction(msg: JsonObj, where: str, *, key: str, at: datetime, sender: str) -> Reaction:
    reaction = obj(msg.get("reaction"), f"{where}.reaction")
    target = ident(reaction.get("message_id"), f"{where}.reaction.message_id")
    # A missing or empty emoji is WhatsApp's way of removing the reaction.
    emoji = opt_string(reaction.get("emoji"), f"{where}.reaction.emoji") or ""
    return Reaction(channel_key=key, external_id=target, emoji=emoji, sender=sender, occurred_at=at)


def _edit(msg: JsonObj, where: str, *, key: str, at: datetime) -> MessageEdit:
    edit = obj(msg.get("edit"), f"{where}.edit")
    target = ident(edit.get("original_message_id"), f"{where}.edit.original_message_id")
    inner = opt_obj(edit.get("message"), f"{where}.edit.message")
    content = message_content(inner, f"{where}.edit.message") if inner else None
    return MessageEdit(channel_key=key, external_id=target, text=content.text if content else None, edited_at=at)


def _parse_status(part: Any, where: str, *, key: str, into: _Result) -> None:
    status = obj(part, where)
    name = opt_string(status.get("status"), f"{where}.status")
    kind = opt_string(status.get("type"), f"{where}.type")
    normalised = _STATUSES.get(name.lower()) if name else None
    if normalised is None or kind not in (None, "message"):
        # Statuses of calls or payments, or ones WhatsApp adds later: not message delivery.
        into.ignored = True
        return
    code = message = None
    errors = collect_errors(status.get("errors"), f"{where}.errors")
    if errors:
        code, message = _error_fields(obj(errors[0], f"{where}.errors[0]"), f"{where}.errors[0]")
    into.events.append(StatusUpdate(
        channel_key=key,
        external_id=ident(status.get("id"), f"{where}.id"),
        status=normalised,
        occurred_at=utc_from_epoch(status.get("timestamp"), field=f"{where}.timestamp"),
        error_code=code,
        error_message=message,
    ))


def _error_fields(error: JsonObj, where: str) -> tuple[str | None, str | None]:
    """WhatsApp's error code as a string, and its title with the details that explain it."""
    code = opt_ident(error.get("code"), f"{where}.code")
    title = opt_string(error.get("title"), f"{where}.title") or opt_string(error.get("message"), f"{where}.message")
    details = opt_string(opt_obj(error.get("error_data"), f"{where}.error_data").get("details"),
                         f"{where}.error_data.details")
    if title and details and details != title:
        return code, f"{title}: {details}"
    return code, title or details
