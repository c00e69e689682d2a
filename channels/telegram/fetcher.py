"""Telegram media download (``schema.media.MediaFetcher``): ``getFile``, then the file URL.

The Bot API serves files up to 20 MB only; anything larger is
:class:`MediaTooLarge` (recorded, never retried). A ``file_path`` that is not a
plain relative path (absolute, ``..``, a URL…) is :class:`MediaRefused`: the file
is only ever fetched over HTTP from the Bot API, never opened locally. Every
other failure is a transient :class:`MediaFetchError` for the media worker to retry.
"""

from __future__ import annotations

import posixpath
from typing import Any

from telegram.error import BadRequest, InvalidToken, TelegramError

from channels.telegram.client import FILE_SIZE_LIMIT, BotPool
from schema.media import MediaDownload, MediaFetchError, MediaRefused, MediaTooLarge

_MAX_PATH = 1024


def _too_large(size: int) -> MediaTooLarge:
    return MediaTooLarge(f"{size} bytes is over the Bot API's {FILE_SIZE_LIMIT // (1024 * 1024)} MB download limit")


def relative_file_path(value: Any) -> str:
    """``file_path`` from getFile if it is a relative Bot API path (``documents/file_5.pdf``), else MediaRefused."""
    if not isinstance(value, str) or not value:
        raise MediaFetchError("getFile returned no file_path")
    shown = repr(value[:80])
    if len(value) > _MAX_PATH or any(ord(c) < 0x20 or c in "\\:\x7f" for c in value):
        raise MediaRefused(f"the Bot API answered a file_path that is not a relative path: {shown}")
    parts = value.split("/")
    if value.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise MediaRefused(f"the Bot API answered a file_path that is not a relative path: {shown}")
    return value


class TelegramFetcher:
    def __init__(self, bots: BotPool) -> None:
        self.bots = bots

    async def fetch(
        self,
        *,
        provider_id: str | None,
        source_url: str | None,
        channel_config: dict[str, Any],
        channel_secrets: dict[str, Any],
    ) -> MediaDownload:
        token = channel_secrets.get("bot_token")
        if not isinstance(token, str) or not token:
            raise MediaFetchError("the channel has no bot_token")
        if not provider_id:
            raise MediaFetchError("no Telegram file_id to fetch")
        try:
            bot = await self.bots.get(token)
            file = await bot.get_file_raw(provider_id)
        except BadRequest as exc:
            if "too big" in exc.message.lower():
                raise MediaTooLarge(f"Telegram refused the download: {exc.message}") from exc
            raise MediaFetchError(f"getFile failed: {exc.message}") from exc
        except InvalidToken as exc:
            raise MediaFetchError("the bot token was rejected by Telegram") from exc
        except TelegramError as exc:
            raise MediaFetchError(f"getFile failed: {exc.message}") from exc
        size = file.get("file_size")
        if isinstance(size, int) and size > FILE_SIZE_LIMIT:
            raise _too_large(size)
        path = relative_file_path(file.get("file_path"))
        try:
            content = await bot.download_file(path)
        except TelegramError as exc:
            raise MediaFetchError(f"download failed: {exc.message}") from exc
        if len(content) > FILE_SIZE_LIMIT:
            raise _too_large(len(content))
        # No mime type: the one the Update announced is better than a guess from
        # Telegram's storage path (the media worker keeps the announced one).
        return MediaDownload(content=content, mime_type=None, name=posixpath.basename(path) or None)
