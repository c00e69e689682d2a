"""``POST /webhooks/telegram/{channel_id}``: Updates pushed by the Bot API.

Handled in this order, and acknowledged only after step 5 commits (Telegram
redelivers on any non-2xx answer):

1. read the body (413 over the size limit) and find the channel (404);
2. compare ``X-Telegram-Bot-Api-Secret-Token`` with the channel's
   ``webhook_secret`` in constant time (401, nothing stored);
3. decode the JSON strictly (400 when it is not UTF-8 JSON, or holds NaN,
   Infinity, integers beyond 64 bits or absurd nesting);
4. parse it; what authenticates but cannot be normalised becomes a dead letter;
5. ingest, deduplicated by ``update_id``, then publish.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from channels.telegram.parse import parse_update, update_id_of
from channels.telegram.verify import SECRET_HEADER, secret_matches
from gateway import pipeline
from gateway.http import ApiError, ctx_of, read_body
from gateway.operation import ApiRoute, Operation, Param
from gateway.telegram_callbacks import answer_after_commit
from gateway.webhooks import webhook_channel
from inbox.channels import ChannelRow
from schema import strict_json
from schema.enums import ChannelType
from schema.events import ParsedPayload, ParseError
from schema.resources import WebhookAccepted


async def _channel(request: Request) -> ChannelRow:
    return await webhook_channel(request, ChannelType.TELEGRAM, "Telegram")


def _decode(body: bytes) -> tuple[str, object]:
    """Strict JSON (``schema.strict_json``): NaN, 1e999 or a 5,000-digit integer would be
    stored and then fail every read of the dead letter, so they are refused (400) instead."""
    try:
        return body.decode("utf-8"), strict_json.loads(body)
    except (UnicodeDecodeError, strict_json.JsonRejected) as exc:
        raise ApiError(400, "malformed_json", f"body is not UTF-8 JSON: {exc}") from None


async def receive(request: Request) -> Response:
    ctx = ctx_of(request)
    body = await read_body(request, ctx.settings.gateway_max_body_bytes)
    channel = await _channel(request)
    if not secret_matches(ctx.channel_secrets(channel).get("webhook_secret"), request.headers.get(SECRET_HEADER)):
        raise ApiError(401, "invalid_secret", f"missing or wrong {SECRET_HEADER}")
    text, data = _decode(body)
    parsed: ParsedPayload | ParseError
    try:
        parsed = parse_update(data)
    except ParseError as exc:
        parsed = exc
    update_id = update_id_of(data)
    result = await pipeline.ingest(
        ctx,
        channel=channel,
        payload=text,
        dedup_key=str(update_id) if update_id is not None else None,
        parsed=parsed,
    )
    answer_after_commit(ctx, channel, data, result)
    outcome = "duplicate" if result.duplicate else str(result.status)
    return JSONResponse({"status": outcome, "inbound_event_id": result.inbound_event_id})


routes = [
    ApiRoute("/webhooks/telegram/{channel_id}", receive, method="POST", operation=Operation(
        "Telegram Bot API webhook (carries the channel's webhook_secret)", {200: WebhookAccepted}, "webhooks",
        auth="provider", body={"type": "object", "description": "A Telegram Update"},
        params=(Param(SECRET_HEADER, {"type": "string"}, "The channel's secrets.webhook_secret", location="header"),),
        errors={401: "Missing or wrong secret token"})),
]
