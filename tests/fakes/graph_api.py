"""A local fake of the WhatsApp Cloud (Graph) API over real HTTP (aiohttp.web on a loopback port).

It speaks the parts the gateway uses:

- ``POST /{version}/{phone_number_id}/messages`` — send (answers a new wamid) or mark as read;
- ``GET /{version}/{media_id}`` — media metadata whose ``url`` points back at this server;
- ``GET /download/{media_id}`` — the media bytes (bearer token required, as on lookaside.fbsbx.com);
- ``GET /redirect/{media_id}`` — a 302 to ``redirects[media_id]``.

``media_urls[media_id]`` makes the metadata name another download URL (a hostile API).

Answers can be scripted per phone number (``fail_next_sends``) to produce 429s, Graph
error envelopes and 5xx, and every request is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

VERSION = "v21.0"


@dataclass
class ScriptedError:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


def graph_error(status: int, code: int, message: str, details: str | None = None,
                retry_after: int | None = None) -> ScriptedError:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AzFake"}
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return ScriptedError(status, {"error": error}, headers)


@dataclass
class Media:
    content: bytes
    mime_type: str
    sha256: str  # what the metadata announces (hex); may be deliberately wrong


@dataclass
class RecordedRequest:
    phone_number_id: str
    body: dict[str, Any]
    authorization: str | None
    wamid: str | None = None  # what the fake answered, for sends it accepted


class FakeGraphApi:
    def __init__(self, tokens: dict[str, str] | None = None) -> None:
        # phone_number_id -> the only access token accepted for it (None: any token)
        self.tokens = tokens or {}
        self.sends: list[RecordedRequest] = []  # every send attempt received
        self.delivered: list[RecordedRequest] = []  # sends answered with a wamid
        self.reads: list[RecordedRequest] = []
        self.media_gets: list[str] = []
        self.downloads: list[str] = []
        self.media: dict[str, Media] = {}
        self.media_urls: dict[str, str] = {}  # media id -> the url the metadata names instead of ours
        self.redirects: dict[str, str] = {}
        self.url = ""
        self._scripts: dict[str, list[ScriptedError]] = {}
        self._ids = itertools.count(1)
        # While ``hold`` is set, sends are received and recorded but not answered
        # until it is released (a slow provider, a send in flight); ``holding`` is
        # set once one is waiting.
        self.hold: asyncio.Event | None = None
        self.holding = asyncio.Event()

    @property
    def base_url(self) -> str:
        return f"{self.url}/{VERSION}"

    def fail_next_sends(self, phone_number_id: str, *errors: ScriptedError) -> None:
        self._scripts.setdefault(phone_number_id, []).extend(errors)

    def add_media(self, media_id: str, content: bytes, mime_type: str = "image/jpeg",
                  announced_sha256: str | None = None) -> None:
        self.media[media_id] = Media(content, mime_type, announced_sha256 or hashlib.sha256(content).hexdigest())

    def sends_with_text(self, text: str) -> list[RecordedRequest]:
        return [r for r in self.sends if r.body.get("text", {}).get("body") == text]

    def delivered_with_text(self, text: str) -> list[RecordedRequest]:
        return [r for r in self.delivered if r.body.get("text", {}).get("body") == text]

    # -- handlers -------------------------------------------------------

    def _authorised(self, request: web.Request, phone_number_id: str | None) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:]:
            return False
        expected = self.tokens.get(phone_number_id) if phone_number_id else None
        if expected is None and phone_number_id is None and self.tokens:
            return header[7:] in self.tokens.values()
        return expected is None or header[7:] == expected

    @staticmethod
    def _unauthorised() -> web.Response:
        return web.json_response({"error": {"message": "Invalid OAuth access token.", "type": "OAuthException",
                                            "code": 190, "fbtrace_id": "AzFake"}}, status=401)

    async def _messages(self, request: web.Request) -> web.Response:
        phone_number_id = request.match_info["phone_number_id"]
        if not self._authorised(request, phone_number_id):
            return self._unauthorised()
        body = await request.json()
        record = RecordedRequest(phone_number_id, body, request.headers.get("Authorization"))
        if body.get("status") == "read":
            self.reads.append(record)
            return web.json_response({"success": True})
        self.sends.append(record)
        if self.hold is not None:
            self.holding.set()
            await self.hold.wait()
        script = self._scripts.get(phone_number_id)
        if script:
            failure = script.pop(0)
            if failure.body is None:
                return web.Response(status=failure.status, text="upstream trouble", headers=failure.headers)
            return web.json_response(failure.body, status=failure.status, headers=failure.headers)
        recipient = body.get("to") or body.get("recipient")
        if body.get("messaging_product") != "whatsapp" or not recipient or body.get("type") != "text":
            return web.json_response({"error": {"message": "(#100) Invalid parameter", "type": "OAuthException",
                                                "code": 100, "fbtrace_id": "AzFake"}}, status=400)
        wamid = f"wamid.FAKE{next(self._ids):06d}"
        record.wamid = wamid
        self.delivered.append(record)
        contact = {"input": recipient, "wa_id": recipient} if "to" in body else {"input": recipient,
                                                                                  "user_id": recipient}
        return web.json_response({"messaging_product": "whatsapp", "contacts": [contact],
                                  "messages": [{"id": wamid}]})

    async def _media_info(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        if not self._authorised(request, None):
            return self._unauthorised()
        self.media_gets.append(media_id)
        media = self.media.get(media_id)
        if media is None:
            return web.json_response({"error": {"message": "Unsupported get request.", "type": "GraphMethodException",
                                                "code": 100, "fbtrace_id": "AzFake"}}, status=400)
        return web.json_response({
            "messaging_product": "whatsapp",
            "url": self.media_urls.get(media_id, f"{self.url}/download/{media_id}?ext=1741952331&hash=fake"),
            "mime_type": media.mime_type,
            "sha256": media.sha256,
            "file_size": str(len(media.content)),
            "id": media_id,
        })

    async def _download(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        if not self._authorised(request, None):
            return web.Response(status=401)
        self.downloads.append(media_id)
        media = self.media.get(media_id)
        if media is None:
            return web.Response(status=404)
        return web.Response(body=media.content, content_type=media.mime_type.split(";")[0])

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(self.redirects[request.match_info["media_id"]])

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/redirect/{media_id}", self._redirect)
        app.router.add_post(f"/{VERSION}/{{phone_number_id}}/messages", self._messages)
        app.router.add_get(f"/{VERSION}/{{media_id}}", self._media_info)
        app.router.add_get("/download/{media_id}", self._download)
        return app


@dataclass
class HeaderRecorder:
    """Any other host on the network: answers 200 to everything and records each request's headers."""

    url: str = ""
    requests: list[dict[str, str]] = field(default_factory=list)

    async def _any(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.headers))
        return web.Response(body=b"\xff\xd8 not for you", content_type="image/jpeg")


@asynccontextmanager
async def running_header_recorder() -> AsyncIterator[HeaderRecorder]:
    recorder = HeaderRecorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder._any)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    recorder.url = f"http://{host}:{port}"
    try:
        yield recorder
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running_graph_api(tokens: dict[str, str] | None = None) -> AsyncIterator[FakeGraphApi]:
    fake = FakeGraphApi(tokens)
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()
