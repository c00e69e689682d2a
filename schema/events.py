"""Normalised inbound events: what a channel adapter turns provider bytes into.

Adapters (``channels/*``) produce these; ``inbox.ingest`` applies them in one
transaction. They carry provider ids only, never database ids.

``channel_key`` routes an event to a channel when one provider request can
carry traffic for several (WhatsApp posts every number of an app to one URL:
the key is ``metadata.phone_number_id``). ``None`` means "the channel the
request arrived on".
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schema.calls import CallSnapshot
from schema.enums import MessageDirection, MessageStatus, MessageType


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    channel_key: str | None = None


class ContactRef(BaseModel):
    """Who a conversation is with: a person, or a group chat (Telegram groups)."""

    model_config = ConfigDict(frozen=True)

    external_id: str
    name: str | None = None
    phone: str | None = None
    # Other ids of the same person on this channel type (a WhatsApp wa_id when
    # the contact is keyed on the newer user id); used to find an existing
    # contact, never to create a second one.
    aliases: tuple[str, ...] = ()


class SenderRef(BaseModel):
    """Author of a message inside a group conversation."""

    model_config = ConfigDict(frozen=True)

    external_id: str
    name: str | None = None


class MediaRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    provider_id: str
    mime_type: str | None = None
    name: str | None = None
    size: int | None = None
    sha256: str | None = None  # as announced by the provider (lowercase hex)
    url: str | None = None  # a provider download URL, when the payload has one


class InboundMessage(_Event):
    kind: Literal["message"] = "message"
    external_id: str
    # ``outbound`` for echoes of business-side sends.
    direction: MessageDirection = MessageDirection.INBOUND
    contact: ContactRef
    sender: SenderRef | None = None
    type: MessageType
    text: str | None = None
    media: tuple[MediaRef, ...] = ()
    reply_to_external_id: str | None = None
    occurred_at: datetime
    extra: dict[str, Any] = Field(default_factory=dict)
    raw: dict[str, Any] | None = None


class StatusUpdate(_Event):
    kind: Literal["status"] = "status"
    external_id: str
    status: MessageStatus
    occurred_at: datetime
    error_code: str | None = None
    error_message: str | None = None


class MessageEdit(_Event):
    kind: Literal["edit"] = "edit"
    external_id: str
    text: str | None
    edited_at: datetime


class MessageDeletion(_Event):
    kind: Literal["delete"] = "delete"
    external_id: str
    deleted_at: datetime


class Reaction(_Event):
    kind: Literal["reaction"] = "reaction"
    external_id: str  # the message reacted to
    emoji: str | None  # None or "" removes this sender's reaction
    sender: str
    occurred_at: datetime


class ContactUnreachable(_Event):
    """The contact can no longer be messaged (e.g. blocked the Telegram bot)."""

    kind: Literal["contact_unreachable"] = "contact_unreachable"
    contact: ContactRef
    reason: str
    occurred_at: datetime


class IdentityChange(_Event):
    """A contact's ids on this channel type changed: a new phone number or user id
    (WhatsApp system notices), a group moved to a new chat id (Telegram migration).

    The contact is found by any of ``known_ids`` or ``retired_ids``; ``new_ids``
    become its identities, ``retired_ids`` stop being (they may be handed to
    someone else, e.g. a recycled phone number). A notice about a contact the
    account never saw changes nothing.
    """

    kind: Literal["identity"] = "identity"
    known_ids: tuple[str, ...] = ()
    new_ids: tuple[str, ...] = ()
    retired_ids: tuple[str, ...] = ()
    name: str | None = None
    phone: str | None = None
    occurred_at: datetime


class CallChange(_Event):
    kind: Literal["call"] = "call"
    call: CallSnapshot


NormalizedEvent = Annotated[
    InboundMessage
    | StatusUpdate
    | MessageEdit
    | MessageDeletion
    | Reaction
    | ContactUnreachable
    | IdentityChange
    | CallChange,
    Field(discriminator="kind"),
]


class ParsedPayload(BaseModel):
    """What an adapter made of one provider request.

    ``events`` empty with ``ignored=True``: valid provider traffic that is not
    conversation data (account or template notices) — stored as ``ignored``.
    ``errors``: parts of the request that could not be normalised while their
    neighbours could; the events are applied and the payload is still a dead
    letter (``failed``) with these errors, so ``replay`` can retry it.
    """

    model_config = ConfigDict(frozen=True)

    events: tuple[NormalizedEvent, ...] = ()
    ignored: bool = False
    errors: tuple[str, ...] = ()


class ParseError(ValueError):
    """A payload authenticated but could not be normalised: it becomes a dead letter."""
