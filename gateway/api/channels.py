"""``/api/v1/channels``: provider connections. Secrets go in, never come out."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from gateway.api._common import (
    admin,
    body_model,
    connection,
    decode_cursor,
    encode_cursor,
    json_response,
    limit_param,
    not_found,
    page,
    path_id,
    principal,
)
from gateway.context import AppContext, ChannelSetup
from gateway.http import ApiError, ctx_of
from gateway.operation import CURSOR, LIMIT, ApiRoute, Operation
from inbox import channels
from inbox.channels import ChannelRow
from inbox.errors import Conflict
from schema.api import ChannelCreate, ChannelUpdate, merge_channel_settings
from schema.enums import ChannelType
from schema.resources import Channel, Page

log = logging.getLogger(__name__)


def channel_json(ctx: AppContext, row: ChannelRow, base_url: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": str(row.type),
        "name": row.name,
        "config": row.config,
        "webhook_url": webhook_url(row, base_url),
        "connection": connection_json(row),
        # Which secrets are stored (names only), so a client knows what a PATCH must supply.
        "secrets_set": sorted(ctx.channel_secrets(row)),
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def _iso(value: Any) -> str:
    return str(value.isoformat().replace("+00:00", "Z"))


# What the AMI runner records in ``state.ami.status`` → the resource's ``connection.status``.
_AMI_STATUS = {"connected": "connected", "failed": "failed", "auth_failed": "failed", "invalid_config": "failed"}


def connection_json(row: ChannelRow) -> dict[str, Any] | None:
    """``{"status": connected|connecting|failed, "reason"}`` as the connection's holder last recorded it.

    AMI connections and Telegram pollers record their state; other channels answer null.
    Unreachable or dropped counts as ``connecting`` (it is retried); a refused
    login or an unsupported PBX is ``failed`` until the channel is changed.
    """
    status = connection_status(row.type, row.state, row.config)
    if status is None:
        return None
    held = _held_connection(row.type, row.state)
    return {"status": status, "reason": None if status == "connected" else held.get("error")}


def _held_connection(type_: ChannelType, state: dict[str, Any] | None) -> dict[str, Any]:
    # The AMI runner records under "ami", the Telegram poller under "poller".
    key = "ami" if type_ == ChannelType.ASTERISK else "poller"
    held = (state or {}).get(key)
    return held if isinstance(held, dict) else {}


def connection_status(type_: ChannelType, state: dict[str, Any] | None,
                      config: dict[str, Any] | None = None) -> str | None:
    """connected|connecting|failed from a channel's stored state; None for channels with no connection
    of their own (WhatsApp, Telegram in webhook mode)."""
    if type_ == ChannelType.ASTERISK:
        return _AMI_STATUS.get(str(_held_connection(type_, state).get("status")), "connecting")
    if type_ == ChannelType.TELEGRAM and (config or {}).get("mode") == "polling":
        status = str(_held_connection(type_, state).get("status"))
        return status if status in ("connected", "failed") else "connecting"
    return None


def webhook_url(row: ChannelRow, base_url: str) -> str | None:
    """Where the provider must post: null for channels that connect out (AMI, Telegram polling)."""
    base = base_url.rstrip("/")
    if row.type == ChannelType.WHATSAPP:
        return f"{base}/webhooks/whatsapp/{row.id}"
    if row.type == ChannelType.TELEGRAM and row.config.get("mode", "webhook") == "webhook":
        public = row.config.get("public_url")
        return f"{(public or base).rstrip('/')}/webhooks/telegram/{row.id}"
    return None


def default_provider_key(type_: ChannelType, config: dict[str, Any], secrets: dict[str, Any]) -> str | None:
    """The provider identity when no setup hook says otherwise."""
    if type_ == ChannelType.WHATSAPP:
        return str(config["phone_number_id"])
    if type_ == ChannelType.ASTERISK:
        return f"{config['host']}:{config['port']}:{config['username']}"
    # A Telegram bot's id is the number before the colon of its token (what getMe returns as id).
    token = str(secrets.get("bot_token", ""))
    bot_id, sep, _ = token.partition(":")
    return bot_id if sep and bot_id.isdigit() else None


async def _setup(
    ctx: AppContext, type_: ChannelType, config: dict[str, Any], secrets: dict[str, Any], channel_id: int | None
) -> ChannelSetup:
    hook = ctx.setup_hooks.get(type_)
    if hook is None:
        return ChannelSetup(default_provider_key(type_, config, secrets), config)
    # The hook checks credentials with the provider and raises ApiError (422) when they are wrong.
    return await hook(ctx, config, secrets, channel_id)


async def _store(
    ctx: AppContext,
    type_: ChannelType,
    secrets: dict[str, Any],
    setup: ChannelSetup,
    write: Callable[[asyncpg.Connection, ChannelSetup], Awaitable[ChannelRow | None]],
) -> ChannelRow | None:
    """Write the channel, then let the setup hook see its id, in one transaction.

    Two phases because a hook may act on the provider once it knows the channel
    id (Telegram's setWebhook points at ``/webhooks/telegram/{id}``). The first
    call (without id) gave the provider identity, so a second claim is refused
    (409) before anything is changed at the provider: a bot already connected
    to another channel never has its webhook redirected. If the second call
    fails, nothing is stored.
    """
    async with connection(ctx.pool) as conn, conn.transaction():
        try:
            row = await write(conn, setup)
        except Conflict as exc:
            raise ApiError(409, "provider_identity_taken", str(exc)) from exc
        if row is None or type_ not in ctx.setup_hooks:
            return row
        final = await _setup(ctx, type_, setup.config, secrets, row.id)
        if final == setup:
            return row
        try:
            return await write(conn, final)
        except Conflict as exc:
            raise ApiError(409, "provider_identity_taken", str(exc)) from exc


def _wake_supervisor(ctx: AppContext) -> None:
    wake = ctx.extras.get("wake_supervisor")
    if callable(wake):
        wake()


async def list_channels(request: Request) -> Response:
    who = await principal(request)
    limit = limit_param(request)
    cursor = decode_cursor(request, "channels", [int])
    rows = await channels.list_channels(
        ctx_of(request).pool, who.account_id, after_id=cursor[0] if cursor else 0, limit=limit + 1
    )
    next_cursor = encode_cursor("channels", [rows[limit - 1].id]) if len(rows) > limit else None
    base = str(request.base_url)
    return page([channel_json(ctx_of(request), r, base) for r in rows[:limit]], next_cursor)


async def create_channel(request: Request) -> Response:
    who = await admin(request)
    body = await body_model(request, ChannelCreate)
    ctx = ctx_of(request)
    setup = await _setup(ctx, body.type, body.config, body.secrets, None)
    sealed = ctx.secret_box.seal(body.secrets)
    created: list[int] = []

    async def write(conn: asyncpg.Connection, s: ChannelSetup) -> ChannelRow | None:
        if not created:
            row = await channels.create_channel(
                conn, who.account_id, type_=body.type, name=body.name, config=s.config, sealed_secrets=sealed,
                provider_key=s.provider_key,
            )
            created.append(row.id)
            return row
        return await channels.update_channel(
            conn, who.account_id, created[0], name=body.name, config=s.config, sealed_secrets=sealed,
            provider_key=s.provider_key,
        )

    row = await _store(ctx, body.type, body.secrets, setup, write)
    assert row is not None
    _wake_supervisor(ctx)
    return json_response(channel_json(ctx, row, str(request.base_url)), 201)


async def get_channel(request: Request) -> Response:
    who = await principal(request)
    ctx = ctx_of(request)
    row = await channels.get_channel(ctx.pool, who.account_id, path_id(request, "channel"))
    if row is None:
        raise not_found("channel")
    return json_response(channel_json(ctx, row, str(request.base_url)))


async def update_channel(request: Request) -> Response:
    who = await admin(request)
    channel_id = path_id(request, "channel")
    body = await body_model(request, ChannelUpdate)
    ctx = ctx_of(request)
    current = await channels.get_channel(ctx.pool, who.account_id, channel_id)
    if current is None:
        raise not_found("channel")
    try:
        config, secrets = merge_channel_settings(current.type, current.config, ctx.channel_secrets(current), body)
    except ValueError as exc:
        raise ApiError(422, "validation_error", str(exc)) from None
    name = body.name or current.name
    sealed = ctx.secret_box.seal(secrets) if body.secrets is not None else current.sealed_secrets

    async def write(conn: asyncpg.Connection, s: ChannelSetup) -> ChannelRow | None:
        return await channels.update_channel(
            conn, who.account_id, channel_id, name=name, config=s.config, sealed_secrets=sealed,
            provider_key=s.provider_key,
        )

    if body.config is None and body.secrets is None:
        # A rename: nothing for the provider to check.
        row = await channels.update_channel(
            ctx.pool, who.account_id, channel_id, name=name, config=config, sealed_secrets=sealed,
            provider_key=current.provider_key,
        )
    else:
        setup = await _setup(ctx, current.type, config, secrets, None)
        row = await _store(ctx, current.type, secrets, setup, write)
    if row is None:
        raise not_found("channel")
    _wake_supervisor(ctx)
    return json_response(channel_json(ctx, row, str(request.base_url)))


async def delete_channel(request: Request) -> Response:
    who = await admin(request)
    ctx = ctx_of(request)
    if not await channels.delete_channel(ctx.pool, who.account_id, path_id(request, "channel")):
        raise not_found("channel")
    _wake_supervisor(ctx)
    return Response(status_code=204)


_TAG = "channels"
routes = [
    ApiRoute("/api/v1/channels", list_channels, method="GET", operation=Operation(
        "List channels", {200: Page[Channel]}, _TAG, params=(LIMIT, CURSOR))),
    ApiRoute("/api/v1/channels", create_channel, method="POST", operation=Operation(
        "Connect a channel (admin)", {201: Channel}, _TAG, auth="admin", body=ChannelCreate,
        description="`config` and `secrets` are checked against the channel type's models "
                    "(WhatsAppConfig/WhatsAppSecrets, TelegramConfig/TelegramSecrets, AsteriskConfig/AsteriskSecrets); "
                    "a setup hook may check the credentials with the provider.",
        errors={409: "Another channel already holds this provider identity",
                502: "The provider could not be reached to check the credentials"})),
    ApiRoute("/api/v1/channels/{id}", get_channel, method="GET", operation=Operation(
        "One channel", {200: Channel}, _TAG)),
    ApiRoute("/api/v1/channels/{id}", update_channel, method="PATCH", operation=Operation(
        "Rename a channel or change its config/secrets (admin)", {200: Channel}, _TAG, auth="admin",
        body=ChannelUpdate, description="`config`/`secrets` are merged into what is stored; null removes a key.",
        errors={409: "Another channel already holds this provider identity",
                502: "The provider could not be reached to check the credentials"})),
    ApiRoute("/api/v1/channels/{id}", delete_channel, method="DELETE", operation=Operation(
        "Release a channel (admin)", {204: None}, _TAG, auth="admin")),
]
