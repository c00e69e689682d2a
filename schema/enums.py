"""Enumerations shared by Python and SQL.

Every enum here is mirrored by a ``CHECK`` constraint in ``sql/``; a test
(``tests/inbox/test_enums_match_sql.py``) proves the two sets are equal.
"""

from __future__ import annotations

from enum import StrEnum


class ChannelType(StrEnum):
    WHATSAPP = "whatsapp"
    TELEGRAM = "telegram"
    ASTERISK = "asterisk"


class ConversationStatus(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class MessageDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageType(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACTS = "contacts"
    INTERACTIVE = "interactive"
    UNSUPPORTED = "unsupported"


class MessageStatus(StrEnum):
    RECEIVED = "received"
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"


class CallDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class CallStatus(StrEnum):
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"
    ENDED = "ended"


class CallDisposition(StrEnum):
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELLED = "cancelled"


class InboundStatus(StrEnum):
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"


class OutboundJobStatus(StrEnum):
    QUEUED = "queued"
    IN_FLIGHT = "in_flight"
    SENT = "sent"
    FAILED = "failed"


class AttemptOutcome(StrEnum):
    STARTED = "started"
    SENT = "sent"
    TRANSIENT_ERROR = "transient_error"
    PERMANENT_ERROR = "permanent_error"
    UNKNOWN = "unknown"


class MediaStatus(StrEnum):
    PENDING = "pending"
    STORED = "stored"
    FAILED = "failed"
    TOO_LARGE = "too_large"


class ApiKeyRole(StrEnum):
    ADMIN = "admin"
    AGENT = "agent"


class EventName(StrEnum):
    CONVERSATION_CREATED = "conversation.created"
    CONVERSATION_UPDATED = "conversation.updated"
    MESSAGE_CREATED = "message.created"
    MESSAGE_UPDATED = "message.updated"
    CALL_CREATED = "call.created"
    CALL_UPDATED = "call.updated"
    CALL_ENDED = "call.ended"
    CONTACT_UPDATED = "contact.updated"


# Forward-only status order (DESIGN §5.5). ``failed`` is terminal and sits
# outside the chain; ``received`` is the only status of inbound messages.
STATUS_RANK: dict[MessageStatus, int] = {
    MessageStatus.PENDING: 0,
    MessageStatus.SENT: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.READ: 3,
    MessageStatus.PLAYED: 4,
}
