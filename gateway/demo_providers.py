"""The demo's stand-ins for the Graph API and the Bot API, mounted under ``/demo`` on the gateway itself.

Replies sent from the demo inbox go out through the real senders and land
here; answers look like the providers' own:

- WhatsApp sends get a wamid, then ``sent``, ``delivered`` and ``read`` statuses
  posted back to the signed webhook; a customer who wrote more than 24 hours ago
  gets Graph error 131047, so the inbox shows a failed send with its reason.
- Media a customer "sent" is served like Meta does: ``GET /{media_id}`` gives
  metadata with the file's sha256 and a download URL on this same origin
  (WHATSAPP_API_BASE's origin is always allowed to receive the token), and the
  download needs the channel's bearer token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import logging
import random
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from channels.whatsapp.verify import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

PHONE_NUMBER_ID = "100000000000001"
WA_ACCESS_TOKEN = "demo-token"
BOT_ID = 7000001
GRAPH_PATH = "/demo/graph/v21.0"
MAX_SHELVED = 500  # media ids kept for download; older ones answer 404 like expired Meta media


@dataclass
class DemoState:
    base: str
    wa_channel: int = 0
    tg_channel: int = 0
    app_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    tg_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    ami_secret: str = field(default_factory=lambda: secrets.token_hex(8))
    update_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(int(time.time())))
    # wa_ids whose 24-hour customer service window is closed.
    out_of_window: set[str] = field(default_factory=set)
    media: OrderedDict[str, tuple[bytes, str]] = field(default_factory=OrderedDict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    # True once the server is shutting down: requests failing then are expected, not worth a warning.
    stopping: Callable[[], bool] = lambda: False

    def warn(self, what: str, exc: Exception) -> None:
        if not self.stopping():
            log.warning("demo: %s: %r", what, exc)

    def later(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def shelve(self, content: bytes, mime_type: str) -> tuple[str, str]:
        """Keep a file for the Graph stand-in to serve; its media id and base64 sha256 for the webhook."""
        media_id = str(random.randint(10**15, 10**16 - 1))
        self.media[media_id] = (content, mime_type)
        while len(self.media) > MAX_SHELVED:
            self.media.popitem(last=False)
        digest = hashlib.sha256(content).digest()
        return media_id, base64.b64encode(digest).decode()


def wa_body(value: dict[str, Any]) -> bytes:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550100000", "phone_number_id": PHONE_NUMBER_ID}, **value}
    body = {"object": "whatsapp_business_account",
            "entry": [{"id": "200000000000001", "changes": [{"field": "messages", "value": value}]}]}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


async def post_wa(state: DemoState, http: httpx.AsyncClient, value: dict[str, Any]) -> None:
    raw = wa_body(value)
    await http.post(f"{state.base}/webhooks/whatsapp/{state.wa_channel}", content=raw,
                    headers={SIGNATURE_HEADER: sign(raw, state.app_secret), "Content-Type": "application/json"})


def _graph_error(code: int, title: str, details: str) -> Response:
    return JSONResponse({"error": {"message": f"(#{code}) {title}", "type": "OAuthException", "code": code,
                                   "error_data": {"messaging_product": "whatsapp", "details": details},
                                   "fbtrace_id": f"Demo{uuid.uuid4().hex[:12]}"}}, status_code=400)


def _authorized(request: Request) -> bool:
    return request.headers.get("authorization") == f"Bearer {WA_ACCESS_TOKEN}"


def provider_routes(state: DemoState) -> list[Route]:
    async def graph_send(request: Request) -> Response:
        if not _authorized(request):
            return _graph_error(190, "Invalid OAuth access token", "The access token could not be decrypted")
        body = await request.json()
        to = str(body.get("to", ""))
        if to in state.out_of_window:
            return _graph_error(131047, "Re-engagement message",
                                "Message failed to send because more than 24 hours have passed since the "
                                "customer last replied to this number.")
        wamid = f"wamid.demo-{uuid.uuid4().hex}"

        async def statuses() -> None:
            async with httpx.AsyncClient(timeout=10) as http:
                for delay, status in ((1, "sent"), (2, "delivered"), (3, "read")):
                    await asyncio.sleep(delay)
                    try:
                        await post_wa(state, http, {"statuses": [{"id": wamid, "status": status,
                                                                 "timestamp": str(int(time.time())),
                                                                 "recipient_id": to}]})
                    except httpx.HTTPError as exc:
                        state.warn(f"status {status} not posted", exc)

        state.later(statuses())
        return JSONResponse({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                             "messages": [{"id": wamid}]})

    async def graph_media(request: Request) -> Response:
        media_id = request.path_params["media_id"]
        if not _authorized(request):
            return _graph_error(190, "Invalid OAuth access token", "The access token could not be decrypted")
        if media_id not in state.media:
            return _graph_error(100, "Invalid parameter", f"Unsupported get request. Object {media_id} does not exist")
        content, mime_type = state.media[media_id]
        return JSONResponse({"messaging_product": "whatsapp", "id": media_id, "mime_type": mime_type,
                             "sha256": hashlib.sha256(content).hexdigest(), "file_size": len(content),
                             "url": f"{state.base}/demo/graph/download/{media_id}?ext={int(time.time())}"})

    async def graph_download(request: Request) -> Response:
        shelved = state.media.get(request.path_params["media_id"])
        if not _authorized(request) or shelved is None:
            return Response(status_code=404)
        content, mime_type = shelved
        return Response(content, media_type=mime_type.split(";")[0])

    async def bot_api(request: Request) -> Response:
        method = request.path_params["method"]
        form: dict[str, Any] = {}
        if request.headers.get("content-type", "").startswith("application/json"):
            form = await request.json()
        else:
            form = dict(await request.form())
        if method == "getMe":
            return JSONResponse({"ok": True, "result": {"id": BOT_ID, "is_bot": True, "first_name": "Demo",
                                                        "username": "inbox_demo_bot"}})
        if method == "sendMessage":
            chat_id = int(str(form.get("chat_id", "0")))
            return JSONResponse({"ok": True, "result": {
                "message_id": random.randint(10_000, 99_999), "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"}, "text": form.get("text", "")}})
        if method in ("setWebhook", "deleteWebhook"):
            return JSONResponse({"ok": True, "result": True})
        return JSONResponse({"ok": False, "error_code": 404, "description": "Not Found"}, status_code=404)

    return [
        Route(f"{GRAPH_PATH}/{{phone_number_id}}/messages", graph_send, methods=["POST"]),
        Route(f"{GRAPH_PATH}/{{media_id}}", graph_media, methods=["GET"]),
        Route("/demo/graph/download/{media_id}", graph_download, methods=["GET"]),
        Route("/demo/telegram/bot{token}/{method}", bot_api, methods=["POST", "GET"]),
    ]
