"""Outbound Telegram messages through python-telegram-bot (``schema.outbound.OutboundSender``).

Error translation (codes are Telegram's HTTP error codes as strings)::

    RetryAfter (429)                       → TransientSendError("429", retry_after=…)
    connect/pool failures, 5xx             → TransientSendError("network" | "5xx")
    read/write timeouts, dropped responses → PermanentSendError("delivery_unknown"):
                                             the request may have reached Telegram, which has no
                                             idempotency key, so a retry could send it twice
    Forbidden (403: blocked, kicked)       → PermanentSendError("403", reason)
    BadRequest (400: chat not found, …)    → PermanentSendError("400", reason)
    InvalidToken (401/404)                 → PermanentSendError("401")
    ChatMigrated (group became supergroup) → PermanentSendError("chat_migrated")
"""

from __future__ import annotations

import httpx
from telegram import ReplyParameters
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from channels.telegram.client import BotPool, retry_after_seconds
from schema.outbound import OutboundRequest, PermanentSendError, SendError, SendResult, TransientSendError

DELIVERY_UNKNOWN = "delivery_unknown"

# httpx failures that prove the request never left this process.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def chat_id_of(to: str) -> int:
    """The contact identity's external id is the Telegram chat id (the user id for private chats)."""
    try:
        return int(to)
    except ValueError as exc:
        raise PermanentSendError("invalid_recipient", f"{to!r} is not a Telegram chat id") from exc


def reply_message_id(reply_to_external_id: str | None, chat_id: int) -> int | None:
    """``"{chat_id}:{message_id}"`` → message_id, when it names a message in this chat."""
    if not reply_to_external_id:
        return None
    chat, _, message = reply_to_external_id.partition(":")
    if chat != str(chat_id) or not message.isdigit():
        return None  # a button press or another chat's message: send without a reply
    return int(message)


def translate_error(exc: TelegramError, *, may_have_sent: bool = True) -> SendError:
    """``may_have_sent=False`` for calls made before the message itself (``getMe`` on first use)."""
    if isinstance(exc, RetryAfter):
        return TransientSendError("429", "Telegram flood control", retry_after=retry_after_seconds(exc))
    if isinstance(exc, Forbidden):
        return PermanentSendError("403", exc.message)
    if isinstance(exc, InvalidToken):
        # PTB's message can contain the token itself: never store it.
        return PermanentSendError("401", "the bot token was rejected by Telegram")
    if isinstance(exc, ChatMigrated):
        return PermanentSendError("chat_migrated", f"the group became a supergroup with chat id {exc.new_chat_id}")
    if isinstance(exc, BadRequest):  # before NetworkError: BadRequest subclasses it
        return PermanentSendError("400", exc.message)
    if isinstance(exc, TimedOut | NetworkError):
        cause = exc.__cause__
        if cause is None:  # Telegram answered with a 5xx
            return TransientSendError("5xx", exc.message)
        if isinstance(cause, _NOT_SENT) or not may_have_sent:
            return TransientSendError("network", exc.message)
        return PermanentSendError(
            DELIVERY_UNKNOWN,
            f"Telegram did not answer ({type(cause).__name__}); the message may have been delivered, "
            "so it is not sent again automatically",
        )
    return TransientSendError("telegram_error", exc.message)


class TelegramSender:
    """Sends text messages and replies; one shared ``Bot`` per bot token."""

    def __init__(self, bots: BotPool) -> None:
        self.bots = bots

    async def send(self, request: OutboundRequest) -> SendResult:
        token = request.channel_secrets.get("bot_token")
        if not isinstance(token, str) or not token:
            raise PermanentSendError("missing_credentials", "the channel has no bot_token")
        if not request.text:
            raise PermanentSendError("empty_message", "Telegram messages need a text")
        chat_id = chat_id_of(request.to)
        reply_to = reply_message_id(request.reply_to_external_id, chat_id)
        # The replied-to message may be gone by now: send anyway rather than fail.
        reply = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to is not None else None
        try:
            bot = await self.bots.get(token)
        except TelegramError as exc:
            raise translate_error(exc, may_have_sent=False) from exc
        # A forum topic's conversation is answered in that topic, not the group's general thread.
        thread = int(request.thread_id) if request.thread_id and request.thread_id.isdigit() else None
        try:
            message = await bot.send_message(chat_id=chat_id, text=request.text, reply_parameters=reply,
                                             message_thread_id=thread)
        except TelegramError as exc:
            raise translate_error(exc) from exc
        return SendResult(external_id=f"{message.chat.id}:{message.message_id}", sent_at=message.date)
