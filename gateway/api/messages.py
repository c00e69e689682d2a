"""Messages: agents' replies (``POST /api/v1/conversations/{id}/messages``) and single messages."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.api._common import body_model, connection, json_response, not_found, path_id, principal
from gateway.http import ApiError, ctx_of
from gateway.operation import ApiRoute, Operation, Param
from gateway.outbound_worker import outbound_config
from gateway.pipeline import publish
from inbox.errors import NotFound
from inbox.outbound import OutboundRejected, enqueue_message
from inbox.views import message_json
from schema.api import MessageCreate
from schema.resources import Message

_MAX_KEY = 255
# Printable ASCII, no surrounding spaces (what _idempotency_key accepts once stripped).
_KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": _MAX_KEY, "pattern": r"^[!-~]([ -~]*[!-~])?$"}


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > _MAX_KEY or not key.isascii() or not key.isprintable():
        raise ApiError(
            400, "invalid_idempotency_key", f"Idempotency-Key must be 1-{_MAX_KEY} printable ASCII characters"
        )
    return key


async def send_message(request: Request) -> Response:
    """Queue a reply: 202 with the ``pending`` message; a repeat of the same
    ``Idempotency-Key`` answers 200 with that message as it is now."""
    who = await principal(request)
    conversation_id = path_id(request, "conversation")
    key = _idempotency_key(request)
    body = await body_model(request, MessageCreate)
    ctx = ctx_of(request)
    async with connection(ctx.pool) as conn:
        key_name = await conn.fetchval("SELECT name FROM api_keys WHERE id = $1", who.key_id)
        try:
            queued = await enqueue_message(
                conn,
                account_id=who.account_id,
                conversation_id=conversation_id,
                text=body.text,
                author=key_name or f"api-key:{who.key_id}",
                idempotency_key=key,
                reply_to_id=body.reply_to_id,
                max_attempts=outbound_config(ctx).max_attempts,
            )
        except NotFound:
            raise not_found("conversation") from None
        except OutboundRejected as exc:
            raise ApiError(409 if exc.code == "idempotency_key_reused" else 422, exc.code, exc.message) from None
        data = await message_json(conn, who.account_id, queued.message_id)
    await publish(ctx, queued.events)
    if queued.created:
        wake = ctx.extras.get("wake_outbound")
        if callable(wake):
            wake()
    return json_response(data, 202 if queued.created else 200)


async def get_message(request: Request) -> Response:
    who = await principal(request)
    try:
        data = await message_json(ctx_of(request).pool, who.account_id, path_id(request, "message"))
    except NotFound:
        raise not_found("message") from None
    return json_response(data)


routes = [
    ApiRoute("/api/v1/conversations/{id}/messages", send_message, method="POST", operation=Operation(
        "Send a reply (queued: 202 pending; a repeated Idempotency-Key answers 200)",
        {202: Message, 200: Message}, "messages", body=MessageCreate,
        params=(Param("Idempotency-Key", _KEY_SCHEMA, "Repeat-safe sends: the same key answers the same message",
                      location="header"),),
        errors={409: "Idempotency-Key reused with another body",
                422: "The body is invalid, or this conversation cannot be replied to (e.g. calls only)"})),
    ApiRoute("/api/v1/messages/{id}", get_message, method="GET", operation=Operation(
        "One message", {200: Message}, "messages")),
]
