"""``/webhooks/whatsapp/{channel_id}``: the subscription handshake and signed event delivery.

A POST is handled in this order, and acknowledged only after step 5 commits:

1. read the body (413 over the size limit) and find the channel (404);
2. verify ``X-Hub-Signature-256`` over the raw bytes with the channel's app
   secret (401, nothing stored);
3. decode the JSON (400 when it is not JSON at all);
4. parse it; what authenticates but cannot be normalised becomes a dead letter;
5. ingest: store the raw body (deduplicated by its sha256) and apply the events
   in one transaction, then publish.

WhatsApp posts every number of an app to one callback URL: the URL's channel
authenticates the body, and each change is routed by its phone_number_id.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from channels.whatsapp.client import GraphApiClient
from channels.whatsapp.fetcher import WhatsAppFetcher
from channels.whatsapp.media_hosts import MediaHostPolicy
from channels.whatsapp.parse import MalformedBody, decode_body, parse_webhook
from channels.whatsapp.sender import WhatsAppSender
from channels.whatsapp.verify import SIGNATURE_HEADER, signature_matches, subscription_challenge
from gateway import pipeline, whatsapp_read_receipts
from gateway.context import AppContext
from gateway.http import ApiError, ctx_of, read_body
from gateway.operation import ApiRoute, Operation, Param
from gateway.webhooks import webhook_channel
from inbox.channels import ChannelRow
from schema.enums import ChannelType
from schema.events import ParsedPayload, ParseError
from schema.resources import WebhookAccepted


async def _channel(request: Request) -> ChannelRow:
    return await webhook_channel(request, ChannelType.WHATSAPP, "WhatsApp")


async def subscribe(request: Request) -> Response:
    channel = await _channel(request)
    secrets = ctx_of(request).channel_secrets(channel)
    challenge = subscription_challenge(request.query_params, secrets.get("verify_token"))
    if challenge is None:
        raise ApiError(403, "forbidden", "hub.mode or hub.verify_token does not match this channel")
    return PlainTextResponse(challenge)


async def receive(request: Request) -> Response:
    ctx = ctx_of(request)
    body = await read_body(request, ctx.settings.gateway_max_body_bytes)
    channel = await _channel(request)
    app_secret = ctx.channel_secrets(channel).get("app_secret")
    if not signature_matches(body, request.headers.get(SIGNATURE_HEADER), app_secret):
        raise ApiError(401, "invalid_signature", f"missing or wrong {SIGNATURE_HEADER}")
    try:
        data = decode_body(body)
    except MalformedBody as exc:
        raise ApiError(400, "malformed_json", str(exc)) from exc
    parsed: ParsedPayload | ParseError
    try:
        parsed = parse_webhook(data)
    except ParseError as exc:
        parsed = exc
    result = await pipeline.ingest(
        ctx,
        channel=channel,
        payload=body.decode("utf-8"),  # decode_body proved it is UTF-8
        dedup_key=hashlib.sha256(body).hexdigest(),
        parsed=parsed,
    )
    outcome = "duplicate" if result.duplicate else str(result.status)
    return JSONResponse({"status": outcome, "inbound_event_id": result.inbound_event_id})


_TEXT = ("text/plain", {"type": "string"})
routes = [
    ApiRoute("/webhooks/whatsapp/{channel_id}", subscribe, method="GET", operation=Operation(
        "Meta's subscription check: answers hub.challenge when hub.verify_token matches", {200: _TEXT}, "webhooks",
        auth="provider", errors={403: "hub.mode or hub.verify_token does not match this channel"}, params=(
            Param("hub.mode", {"type": "string"}, "subscribe"),
            Param("hub.verify_token", {"type": "string"}, "The channel's secrets.verify_token"),
            Param("hub.challenge", {"type": "string"}, "Echoed back"),
        ))),
    ApiRoute("/webhooks/whatsapp/{channel_id}", receive, method="POST", operation=Operation(
        "WhatsApp Cloud API webhook (signed with the app secret)", {200: WebhookAccepted}, "webhooks",
        auth="provider", body={"type": "object", "description": "The Cloud API webhook payload"},
        params=(Param(SIGNATURE_HEADER, {"type": "string"}, "sha256=HMAC of the body with secrets.app_secret",
                      location="header"),),
        errors={401: "Missing or wrong signature"})),
]


def install(ctx: AppContext) -> None:
    """Register the WhatsApp sender, media fetcher and read receipts; they share one Graph API client."""
    base = ctx.settings.whatsapp_api_base
    client = GraphApiClient(base, media_hosts=MediaHostPolicy(base, ctx.settings.whatsapp_media_hosts))
    ctx.extras["whatsapp_client"] = client
    # setdefault: a test may have plugged its own in through the context overrides.
    ctx.senders.setdefault(ChannelType.WHATSAPP, WhatsAppSender(client))
    ctx.fetchers.setdefault(ChannelType.WHATSAPP, WhatsAppFetcher(client))
    whatsapp_read_receipts.install(ctx, client)

    async def stop(ctx: AppContext) -> None:
        await client.close()

    ctx.extras.setdefault("stoppers", []).append(stop)
