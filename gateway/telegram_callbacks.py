"""Answering Telegram button presses (``answerCallbackQuery``) once they are committed.

Until a bot answers a callback query, the customer's client shows a spinner on
the button. The answer is sent after the update's commit, in a background task
owned by the app's task group (cancelled at shutdown, before the bots close),
with its own deadline: a slow or failing Bot API never delays or fails ingest,
and a press whose update was already stored (a redelivery) is not answered again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram.error import InvalidToken, TelegramError

from channels.telegram.client import BotPool
from channels.telegram.parse import callback_query_id
from gateway.context import AppContext
from inbox.channels import ChannelRow
from inbox.ingest import IngestResult

log = logging.getLogger(__name__)

ANSWER_TIMEOUT = 10.0  # seconds; Telegram itself stops waiting for an answer after about 15


def answer_after_commit(ctx: AppContext, channel: ChannelRow, raw: Any, result: IngestResult) -> None:
    """Start answering the button press ``raw`` carries, if any; returns at once."""
    query_id = callback_query_id(raw)
    bots = ctx.extras.get("telegram_bots")
    if query_id is None or result.duplicate or not isinstance(bots, BotPool):
        return
    token = ctx.channel_secrets(channel).get("bot_token")
    if not isinstance(token, str):
        return
    ctx.tasks.spawn(_answer(bots, token, query_id, channel.id), name=f"telegram-answer-{channel.id}-{query_id}")


async def _answer(bots: BotPool, token: str, query_id: str, channel_id: int) -> None:
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            bot = await bots.get(token)
            await bot.answer_callback_query(query_id)
    except InvalidToken:  # its message would contain the token
        log.warning("telegram channel %s: button press not answered: the bot token was rejected", channel_id)
    except TelegramError as exc:
        log.warning("telegram channel %s: button press not answered: %s", channel_id, exc.message)
    except TimeoutError:
        log.warning("telegram channel %s: button press not answered within %.0f s", channel_id, ANSWER_TIMEOUT)
