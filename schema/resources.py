"""Response bodies of the REST API (DESIGN §6), as the JSON helpers produce them.

The routes build plain dicts (``inbox.views``, ``inbox.calls``, ``gateway.api.*``);
these models describe those dicts exactly (``extra="forbid"``), so that
``/openapi.json`` documents what a client really receives and the tests can
validate real responses against them (``tests/api/test_openapi_models.py``).
Timestamps are ISO-8601 strings in UTC (``…Z`` or ``…+00:00``); null when unset.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from schema.enums import (
    ApiKeyRole,
    CallDirection,
    CallDisposition,
    CallStatus,
    ChannelType,
    ConversationStatus,
    EventName,
    InboundStatus,
    MediaStatus,
    MessageDirection,
    MessageStatus,
    MessageType,
)

T = TypeVar("T")

Timestamp = str


class _Resource(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Resource):
    code: str = Field(description="Stable machine-readable code, e.g. not_found, validation_error")
    message: str = Field(description="Human-readable explanation; never echoes secrets")


class Error(_Resource):
    """Every 4xx/5xx answer of the API."""

    error: ErrorDetail


class Page(_Resource, Generic[T]):
    """One page of a list; pass ``next_cursor`` as ``?cursor=`` for the next (null: no more)."""

    items: list[T]
    next_cursor: str | None


# --- channels -----------------------------------------------------------------------------------


class Connection(_Resource):
    """Whether the gateway's outgoing connection (the PBX's AMI) is up, as its holder last recorded."""

    status: Literal["connected", "connecting", "failed"]
    reason: str | None


class Channel(_Resource):
    id: int
    type: ChannelType
    name: str
    config: dict[str, Any]
    webhook_url: str | None = Field(description="Where the provider must post; null for channels that connect out")
    connection: Connection | None = Field(description="null for webhook-only channels")
    secrets_set: list[str] = Field(description="Names of the stored secrets (values never come out)")
    created_at: Timestamp
    updated_at: Timestamp


# --- conversations, messages, contacts ----------------------------------------------------------


class ContactRef(_Resource):
    id: int
    name: str | None


class Conversation(_Resource):
    id: int
    channel_id: int
    channel_type: ChannelType
    contact: ContactRef
    status: ConversationStatus
    assignee: str | None
    last_activity_at: Timestamp
    unread_count: int
    created_at: Timestamp
    updated_at: Timestamp


class Media(_Resource):
    id: int
    mime_type: str | None
    name: str | None
    size: int | None
    sha256: str | None
    status: MediaStatus
    url: str = Field(description="GET it with the API key: /api/v1/media/{id}")


class Reaction(_Resource):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    emoji: str | None
    from_: Any = Field(alias="from")


class MessageError(_Resource):
    code: str | None
    message: str | None


class Message(_Resource):
    id: int
    conversation_id: int
    channel_id: int
    direction: MessageDirection
    type: MessageType
    text: str | None
    status: MessageStatus
    external_id: str | None
    reply_to_id: int | None
    sender: Any
    author: str | None
    media: list[Media]
    reactions: list[Reaction]
    edit_history: list[Any]
    extra: dict[str, Any]
    error: MessageError | None
    created_at: Timestamp
    sent_at: Timestamp | None
    delivered_at: Timestamp | None
    read_at: Timestamp | None
    played_at: Timestamp | None
    failed_at: Timestamp | None
    edited_at: Timestamp | None
    deleted_at: Timestamp | None


class Identity(_Resource):
    id: int
    channel_type: ChannelType
    external_id: str
    display: str | None
    unreachable: bool
    unreachable_at: Timestamp | None
    unreachable_reason: str | None


class Contact(_Resource):
    id: int
    name: str | None
    phone: str | None
    is_group: bool
    created_at: Timestamp
    updated_at: Timestamp
    identities: list[Identity]


# --- calls --------------------------------------------------------------------------------------


class Call(_Resource):
    id: int
    conversation_id: int | None
    channel_id: int
    contact_id: int | None
    direction: CallDirection
    from_number: str | None
    to_number: str | None
    caller_name: str | None
    status: CallStatus
    disposition: CallDisposition | None
    agent: str | None
    started_at: Timestamp
    answered_at: Timestamp | None
    ended_at: Timestamp | None
    duration: int | None
    billsec: int | None
    hangup_cause: str | None
    recording: Media | None
    external_id: str | None
    originate_id: str | None
    created_at: Timestamp
    updated_at: Timestamp


class CallEvent(_Resource):
    type: str
    data: Any
    occurred_at: Timestamp


class CallWithEvents(Call):
    events: list[CallEvent]


class TimelineEntry(_Resource):
    kind: Literal["message", "call"]
    item: Message | Call


# --- events, inbound payloads -------------------------------------------------------------------


class Event(_Resource):
    """An entry of the durable event log: the same shape as a WebSocket ``event`` frame."""

    type: Literal["event"]
    seq: int
    event: EventName
    account_id: int
    conversation_id: int | None
    data: dict[str, Any]
    ts: Timestamp


class EventPage(Page[Event]):
    latest_seq: int = Field(description="The newest seq of the account's log (0 when empty)")


class InboundEvent(_Resource):
    id: int
    channel_id: int
    status: InboundStatus
    error: str | None
    attempts: int
    received_at: Timestamp
    processed_at: Timestamp | None
    payload: Any = Field(description="The provider's body: decoded JSON, or the verbatim text when not JSON")


# --- keys ---------------------------------------------------------------------------------------


class ApiKey(_Resource):
    id: int
    name: str
    role: ApiKeyRole
    prefix: str
    created_at: Timestamp
    revoked_at: Timestamp | None


class ApiKeyCreated(ApiKey):
    key: str = Field(description="The key itself: shown this once, only its hash is stored")


# --- stats --------------------------------------------------------------------------------------


class MessageCount(_Resource):
    channel_id: int
    channel_type: ChannelType
    channel_name: str
    direction: MessageDirection
    count: int


class CallCounts(_Resource):
    total: int
    answered: int
    missed: int
    active: int
    by_disposition: dict[str, int]


class FirstResponse(_Resource):
    median_seconds: float | None
    conversations: int


class Stats(_Resource):
    since: Timestamp | None
    until: Timestamp | None
    open_conversations: int
    conversations: dict[str, int]
    messages: list[MessageCount]
    calls: CallCounts
    first_response: FirstResponse


# --- retention ----------------------------------------------------------------------------------


class RetentionPolicyOut(_Resource):
    messages_days: int | None
    calls_days: int | None
    call_events_days: int | None
    events_days: int | None
    dead_letters_days: int | None
    raw_payloads_days: int | None
    redact_after_days: int | None
    valid: bool = Field(description="false when the stored policy no longer validates (the run skips the account)")


class RetentionPreview(_Resource):
    dry_run: Literal[True]
    now: Timestamp
    deleted: dict[str, int]
    redacted: dict[str, int]
    error: str | None


# --- webhooks, health ---------------------------------------------------------------------------


class WebhookAccepted(_Resource):
    status: str = Field(description="What became of the payload: processed, ignored, duplicate, …")
    inbound_event_id: int | None


class Health(_Resource):
    status: Literal["ok"]


class Readiness(_Resource):
    status: Literal["ready", "degraded", "draining", "unavailable"]
    checks: dict[str, str]
