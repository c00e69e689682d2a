"""Telegram channels at run time: setup on create, the connection runner, the installer.

**Setup** (``ctx.setup_hooks[telegram]``, called by the channels API): checks the
config, calls ``getMe`` to learn the bot's id (the channel's ``provider_key``) and
username; a rejected token is a 422. When the channel id is already known (an
update), webhook mode with a ``public_url`` also calls ``setWebhook`` so a bad URL
is reported at once. At creation the id is not known yet: then the runner sets
the webhook as soon as the channel supervisor starts it, which it does for every
live channel right after the API wakes it.

**Runner** (``ctx.runners[telegram]``, run by the channel supervisor on exactly
one node):

- ``polling``: deletes any webhook, then long-polls ``getUpdates``; each update
  is ingested (deduplicated by ``update_id``) and only then is the next offset
  stored in ``channels.state.offset`` and sent to Telegram, which forgets
  updates below it. A crash between the commit and the stored offset redelivers
  a few updates, which deduplication absorbs: none is lost, none stored twice.
- ``webhook``: ensures ``setWebhook`` (with ``public_url``) and then idles; the
  supervisor expects runners to run until cancelled.

Failures back off from 1 s to a 60 s cap with jitter (at most 6 tries in 30 s);
a 429 waits its ``retry_after``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from telegram.error import BadRequest, Conflict, InvalidToken, RetryAfter, TelegramError

from channels.telegram.client import BotPool, GatewayBot, make_bot, retry_after_seconds
from channels.telegram.fetcher import TelegramFetcher
from channels.telegram.parse import ALLOWED_UPDATES, parse_update, update_id_of
from channels.telegram.sender import TelegramSender
from channels.telegram.verify import valid_webhook_secret
from gateway import pipeline
from gateway.backoff import ReconnectBackoff
from gateway.context import AppContext, ChannelSetup
from gateway.http import DB_ERRORS, ApiError
from gateway.telegram_callbacks import answer_after_commit
from inbox.channels import ChannelRow, get_channel_any_account, update_state
from schema.enums import ChannelType
from schema.events import ParsedPayload, ParseError

log = logging.getLogger(__name__)

MODES = ("webhook", "polling")
DEFAULT_POLL_TIMEOUT = 25  # seconds a getUpdates call may wait for news


def webhook_url(public_url: str, channel_id: int) -> str:
    return f"{public_url.rstrip('/')}/webhooks/telegram/{channel_id}"


# -- setup ----------------------------------------------------------------------


def _checked_config(config: dict[str, Any], secrets: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    mode = config.get("mode", "webhook")
    if mode not in MODES:
        raise ApiError(422, "invalid_config", "config.mode must be 'webhook' or 'polling'")
    token = secrets.get("bot_token")
    if not isinstance(token, str) or not token.strip():
        raise ApiError(422, "invalid_credentials", "secrets.bot_token is required")
    public_url = config.get("public_url")
    if public_url is not None and not (isinstance(public_url, str) and public_url.startswith(("https://", "http://"))):
        raise ApiError(422, "invalid_config", "config.public_url must be an http(s) URL")
    if mode == "webhook" and not valid_webhook_secret(secrets.get("webhook_secret")):
        raise ApiError(
            422, "invalid_config",
            "webhook mode needs secrets.webhook_secret: 1-256 characters of A-Z, a-z, 0-9, _ and -",
        )
    timeout = config.get("poll_timeout", DEFAULT_POLL_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 <= timeout <= 60:
        raise ApiError(422, "invalid_config", "config.poll_timeout must be an integer from 0 to 60 (seconds)")
    return mode, token.strip(), {**config, "mode": mode}


async def setup_channel(
    ctx: AppContext, config: dict[str, Any], secrets: dict[str, Any], channel_id: int | None
) -> ChannelSetup:
    mode, token, stored = _checked_config(config, secrets)
    try:
        bot = make_bot(ctx.settings.telegram_api_base, token)
    except InvalidToken as exc:
        raise ApiError(422, "invalid_credentials", "Telegram rejected the bot token") from exc
    try:
        await bot.initialize()  # getMe
        me = bot.bot
        public_url = stored.get("public_url")
        if mode == "webhook" and public_url and channel_id is not None:
            await bot.set_webhook(
                webhook_url(public_url, channel_id),
                secret_token=secrets["webhook_secret"],
                allowed_updates=list(ALLOWED_UPDATES),
            )
    except InvalidToken as exc:  # its message contains the token: not repeated here
        raise ApiError(422, "invalid_credentials", "Telegram rejected the bot token") from exc
    except BadRequest as exc:
        raise ApiError(422, "invalid_config", f"Telegram refused the webhook: {exc.message}") from exc
    except TelegramError as exc:
        raise ApiError(502, "provider_unavailable", f"the Telegram Bot API did not answer: {exc.message}") from exc
    finally:
        await bot.shutdown()
    stored.update({"bot_id": me.id, "bot_username": me.username})
    return ChannelSetup(provider_key=str(me.id), config=stored)


# -- runner ---------------------------------------------------------------------


async def _forever() -> None:
    await asyncio.Event().wait()


class TelegramPoller:
    """The getUpdates loop of one polling channel (module docstring)."""

    def __init__(self, ctx: AppContext, channel: ChannelRow, bot: GatewayBot) -> None:
        self.ctx = ctx
        self.channel = channel
        self.bot = bot
        timeout = channel.config.get("poll_timeout", DEFAULT_POLL_TIMEOUT)
        self.timeout = timeout if isinstance(timeout, int) and not isinstance(timeout, bool) else DEFAULT_POLL_TIMEOUT
        self.limit = 100
        self.offset: int | None = None
        self._offset_loaded = False
        self._webhook_cleared = False
        self._reported: tuple[str, str | None] | None = None

    async def run(self) -> None:
        backoff = ReconnectBackoff()
        while True:
            delay = backoff.next_delay()
            if delay:
                await asyncio.sleep(delay)
            try:
                await self._prepare()
                while True:
                    await self.poll_once()
                    await self._report("connected")
                    backoff.reset()
            except RetryAfter as exc:
                await self._report("connecting", "Telegram asked to slow down (429)")
                await asyncio.sleep(retry_after_seconds(exc))
            except InvalidToken:
                log.error("telegram channel %s: Telegram rejects the bot token; fix the channel", self.channel.id)
                await self._report("failed", "Telegram rejects the bot token")
            except Conflict as exc:
                # A webhook set elsewhere, or another poller of the same bot outside this deployment.
                log.warning("telegram channel %s: %s", self.channel.id, exc.message)
                await self._report("connecting", exc.message)
                self._webhook_cleared = False
            except TelegramError as exc:
                log.warning("telegram channel %s: getUpdates failed: %s", self.channel.id, exc.message)
                await self._report("connecting", f"getUpdates failed: {exc.message}")
            except DB_ERRORS as exc:
                log.warning("telegram channel %s: database unavailable: %r", self.channel.id, exc)

    async def _report(self, status: str, error: str | None = None) -> None:
        """What the poller is doing (``channels.state.poller``), written only when it changes; never fatal."""
        if self._reported == (status, error):
            return
        state = {"status": status, "error": error, "node": self.ctx.node_id}
        try:
            await update_state(self.ctx.pool, self.channel.id, {"poller": state})
        except DB_ERRORS as exc:
            log.warning("telegram channel %s: could not record its state: %r", self.channel.id, exc)
            return
        self._reported = (status, error)

    async def _prepare(self) -> None:
        if not self._offset_loaded:
            # The row the supervisor handed over may predate the last stored offset.
            current = await get_channel_any_account(self.ctx.pool, self.channel.id)
            offset = (current.state if current else self.channel.state).get("offset")
            self.offset = offset if isinstance(offset, int) and not isinstance(offset, bool) else None
            self._offset_loaded = True
        await self.bot.initialize()
        if not self._webhook_cleared:
            await self.bot.delete_webhook(drop_pending_updates=False)
            self._webhook_cleared = True

    async def poll_once(self) -> int:
        """One getUpdates round: ingest every update, then store the next offset. Returns the count."""
        updates = await self.bot.get_updates_raw(
            offset=self.offset, limit=self.limit, poll_timeout=self.timeout, allowed_updates=ALLOWED_UPDATES
        )
        if not updates:
            return 0
        seen: list[int] = []
        for raw in updates:
            update_id = update_id_of(raw)
            if update_id is not None:
                if self.offset is not None and update_id < self.offset:
                    continue  # already confirmed; Telegram should not send it again
                seen.append(update_id)
            await ingest_update(self.ctx, self.channel, raw)
        if seen:
            next_offset = max(seen) + 1
            await update_state(self.ctx.pool, self.channel.id, {"offset": next_offset})
            self.offset = next_offset
        return len(updates)


async def ingest_update(ctx: AppContext, channel: ChannelRow, raw: Any) -> None:
    parsed: ParsedPayload | ParseError
    try:
        parsed = parse_update(raw)
    except ParseError as exc:
        parsed = exc
    update_id = update_id_of(raw)
    result = await pipeline.ingest(
        ctx,
        channel=channel,
        # ASCII-escaped: a lone surrogate in a string must not make the row unstorable.
        payload=json.dumps(raw),
        dedup_key=str(update_id) if update_id is not None else None,
        parsed=parsed,
    )
    answer_after_commit(ctx, channel, raw, result)


async def _keep_webhook(ctx: AppContext, channel: ChannelRow, bot: GatewayBot) -> None:
    """Ensure Telegram pushes to this gateway (webhook mode with a public_url)."""
    public_url = channel.config.get("public_url")
    secret = ctx.channel_secrets(channel).get("webhook_secret")
    if not (isinstance(public_url, str) and public_url and valid_webhook_secret(secret)):
        return  # the operator registers the webhook; we only verify what arrives
    url = webhook_url(public_url, channel.id)
    backoff = ReconnectBackoff()
    while True:
        delay = backoff.next_delay()
        if delay:
            await asyncio.sleep(delay)
        try:
            await bot.initialize()
            await bot.set_webhook(url, secret_token=secret, allowed_updates=list(ALLOWED_UPDATES))
            await update_state(ctx.pool, channel.id, {"webhook_url": url})
            log.info("telegram channel %s: webhook set to %s", channel.id, url)
            return
        except RetryAfter as exc:
            await asyncio.sleep(retry_after_seconds(exc))
        except InvalidToken:
            log.error("telegram channel %s: Telegram rejects the bot token; fix the channel", channel.id)
            return
        except BadRequest as exc:
            log.error("telegram channel %s: Telegram refused the webhook %s: %s", channel.id, url, exc.message)
            return
        except TelegramError as exc:
            log.warning("telegram channel %s: setWebhook failed: %s", channel.id, exc.message)
        except DB_ERRORS as exc:
            log.warning("telegram channel %s: database unavailable: %r", channel.id, exc)


async def run_channel(ctx: AppContext, channel: ChannelRow) -> None:
    """The channel supervisor's runner for Telegram channels; runs until cancelled."""
    token = ctx.channel_secrets(channel).get("bot_token")
    if not isinstance(token, str) or not token:
        log.error("telegram channel %s has no bot_token", channel.id)
        await _forever()
    bot = make_bot(ctx.settings.telegram_api_base, str(token), polling=channel.config.get("mode") == "polling")
    try:
        if channel.config.get("mode") == "polling":
            await TelegramPoller(ctx, channel, bot).run()
        else:
            await _keep_webhook(ctx, channel, bot)
            await bot.shutdown()
            await _forever()
    finally:
        await bot.shutdown()


# -- installer ------------------------------------------------------------------


def install(ctx: AppContext) -> None:
    """Register the Telegram sender, media fetcher, runner and setup hook (one shared bot pool)."""
    bots = BotPool(ctx.settings.telegram_api_base)
    ctx.extras["telegram_bots"] = bots
    # setdefault: a test may have plugged its own in through the context overrides.
    ctx.senders.setdefault(ChannelType.TELEGRAM, TelegramSender(bots))
    ctx.fetchers.setdefault(ChannelType.TELEGRAM, TelegramFetcher(bots))
    ctx.runners.setdefault(ChannelType.TELEGRAM, run_channel)
    ctx.setup_hooks.setdefault(ChannelType.TELEGRAM, setup_channel)

    async def stop(ctx: AppContext) -> None:
        await bots.close()

    ctx.extras.setdefault("stoppers", []).append(stop)
