"""python-telegram-bot ``Bot`` instances pointed at ``TELEGRAM_API_BASE``, created once and reused.

``{root}/bot{token}/{method}`` and ``{root}/file/bot{token}/{path}`` (DESIGN §3):
the root is the real Bot API or, in tests, a local fake.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from telegram import Bot
from telegram.error import RetryAfter
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

# PTB 22 reads time periods (RetryAfter.retry_after) as ints with a deprecation
# warning on every access, including its own inside the constructor; opting in
# to the coming timedelta form silences that. retry_after_seconds reads both.
os.environ.setdefault("PTB_TIMEDELTA", "true")

# The Bot API refuses getFile for anything larger.
FILE_SIZE_LIMIT = 20 * 1024 * 1024


class GatewayBot(Bot):
    """A ``Bot`` that can also fetch Updates as the server sent them.

    ``Bot.get_updates`` decodes every Update and raises when one is malformed,
    which would wedge a poller on that update forever; the gateway stores
    each raw update and lets its own parser dead-letter what it cannot read.
    """

    __slots__ = ()

    async def get_updates_raw(
        self, *, offset: int | None, limit: int, poll_timeout: int, allowed_updates: Sequence[str]
    ) -> list[Any]:
        data: dict[str, Any] = {
            "offset": offset,
            "limit": limit,
            "timeout": poll_timeout,
            "allowed_updates": list(allowed_updates),
        }
        # Same read timeout rule as Bot.get_updates: the long poll plus the request's own.
        read_timeout = (self._request[0].read_timeout or 0) + poll_timeout
        result = await self._post("getUpdates", data, read_timeout=read_timeout)
        return list(result) if isinstance(result, list) else []

    async def get_file_raw(self, file_id: str) -> dict[str, Any]:
        """``getFile``'s answer as the server sent it.

        ``Bot.get_file`` (and ``File.download_*``) read ``file_path`` from local
        disk whenever it names an existing file: a Bot API server answering
        ``/etc/hostname`` would hand the gateway its own files. Here the path is
        left as sent, for the caller to check and :meth:`download_file` to fetch.
        """
        result = await self._post("getFile", {"file_id": file_id})
        return dict(result) if isinstance(result, dict) else {}

    async def download_file(self, file_path: str) -> bytes:
        """``{root}/file/bot{token}/{file_path}`` over HTTP, never from local disk; the caller checked the path."""
        return await self.request.retrieve(f"{self.base_file_url}/{quote(file_path)}")


def make_bot(api_base: str, token: str, *, polling: bool = False) -> GatewayBot:
    """A new, uninitialised bot. ``polling`` sizes it for one long poll at a time."""
    root = api_base.rstrip("/")
    request = HTTPXRequest(connection_pool_size=1 if polling else 8, read_timeout=10.0, connect_timeout=5.0)
    return GatewayBot(
        token,
        base_url=f"{root}/bot",
        base_file_url=f"{root}/file/bot",
        request=request,
        get_updates_request=HTTPXRequest(connection_pool_size=1, read_timeout=10.0, connect_timeout=5.0),
    )


def retry_after_seconds(exc: RetryAfter) -> float:
    """``RetryAfter.retry_after`` as seconds, whichever type this PTB version hands out."""
    with warnings.catch_warnings():
        # PTB 22 warns that the attribute will become a timedelta; we accept both.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: Any = exc.retry_after
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


class BotPool:
    """One initialised bot per token, shared by the sender and the media fetcher.

    Bots are initialised on first use (``getMe``) and shut down by :meth:`close`;
    a bot whose initialisation failed is not kept, so the next call tries again.
    """

    def __init__(self, api_base: str) -> None:
        self.api_base = api_base
        self._bots: dict[str, GatewayBot] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, token: str) -> GatewayBot:
        bot = self._bots.get(token)
        if bot is not None:
            return bot
        async with self._locks.setdefault(token, asyncio.Lock()):
            bot = self._bots.get(token)
            if bot is None:
                bot = make_bot(self.api_base, token)
                try:
                    await bot.initialize()
                except BaseException:
                    await bot.shutdown()
                    raise
                self._bots[token] = bot
            return bot

    async def close(self) -> None:
        bots, self._bots = list(self._bots.values()), {}
        for bot in bots:
            await bot.shutdown()
