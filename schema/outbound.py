"""The channel-independent outbound contract.

Exception tree::

    SendError
    ├── TransientSendError   retry later (429, 5xx, network); may carry retry_after
    └── PermanentSendError   never retry (24 h window, blocked bot, bad recipient)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from schema.enums import ChannelType


class OutboundRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: int
    message_id: int
    attempt: int
    channel_id: int
    channel_type: ChannelType
    channel_config: dict[str, Any]
    channel_secrets: dict[str, Any]
    to: str  # the contact identity's external id on this channel type (the newest one)
    text: str | None
    reply_to_external_id: str | None = None
    # Every identity of the contact on this channel type, newest first (``to`` among
    # them): a sender may prefer one kind, e.g. WhatsApp a phone number over a user id.
    identities: tuple[str, ...] = ()
    # The sub-thread of the chat to answer in (a Telegram forum topic), when the
    # replied-to or latest inbound message of the conversation had one.
    thread_id: str | None = None


class SendResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    external_id: str
    sent_at: datetime | None = None


class SendError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class TransientSendError(SendError):
    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class PermanentSendError(SendError):
    pass


class OutboundSender(Protocol):
    """One per channel type; plugged into the outbound worker."""

    async def send(self, request: OutboundRequest) -> SendResult: ...
