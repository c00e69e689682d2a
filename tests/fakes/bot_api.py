"""A local fake of the Telegram Bot API over real HTTP (aiohttp.web on a loopback port).

It speaks the methods the gateway uses, with Telegram's envelope
(``{"ok": true, "result": …}`` / ``{"ok": false, "error_code", "description", "parameters"}``)
and parameter encodings (query string, form-urlencoded with JSON-encoded values
as python-telegram-bot sends them, multipart, or a JSON body):

- ``getMe``; ``getUpdates`` with Telegram's offset semantics (an offset confirms
  every update below it, which the server then forgets), ``limit`` and
  long-poll ``timeout``; a second concurrent ``getUpdates`` terminates the first
  with 409, and ``getUpdates`` while a webhook is set answers 409;
- ``setWebhook`` / ``deleteWebhook`` / ``getWebhookInfo``; while a webhook is set
  the fake delivers pending updates to it (with ``X-Telegram-Bot-Api-Secret-Token``),
  in order, retrying any non-2xx answer like Telegram does;
- ``sendMessage``; ``answerCallbackQuery``; ``getFile`` (refusing files over 20 MB) and the file download
  at ``/file/bot<token>/<file_path>``.

Errors are scripted per method (``fail_next``): 429 with ``retry_after``,
403 "bot was blocked by the user", 400 "chat not found", 5xx. Every call is
recorded for assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

FILE_SIZE_LIMIT = 20 * 1024 * 1024

# Values kept as strings even when they look like JSON (a text "123" stays text).
_STRING_PARAMS = {"text", "url", "secret_token", "file_id", "caption", "parse_mode", "chat_id_str",
                  "callback_query_id"}


@dataclass
class ScriptedError:
    status: int
    description: str
    retry_after: int | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def too_many_requests(retry_after: int) -> ScriptedError:
    return ScriptedError(429, f"Too Many Requests: retry after {retry_after}", retry_after)


BLOCKED = ScriptedError(403, "Forbidden: bot was blocked by the user")
CHAT_NOT_FOUND = ScriptedError(400, "Bad Request: chat not found")
BAD_GATEWAY = ScriptedError(502, "Bad Gateway")


@dataclass
class StoredFile:
    file_id: str
    file_path: str
    content: bytes | None
    size: int


@dataclass
class Call:
    method: str
    params: dict[str, Any]


@dataclass
class FakeBot:
    token: str
    id: int
    username: str
    first_name: str = "Acme Support"
    pending: list[dict[str, Any]] = field(default_factory=list)  # not yet confirmed
    webhook: dict[str, Any] | None = None
    calls: list[Call] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)  # sendMessage results
    files: dict[str, StoredFile] = field(default_factory=dict)
    downloads: list[str] = field(default_factory=list)
    webhook_deliveries: list[tuple[int, int]] = field(default_factory=list)  # (update_id, HTTP status)
    conflicts: int = 0  # getUpdates calls terminated by a concurrent one
    batch_limit: int = 100  # at most this many updates per getUpdates answer, whatever the limit asked
    poll_delay: float = 0.0  # seconds each non-empty getUpdates answer is held back (a slow stream)
    scripts: dict[str, list[ScriptedError]] = field(default_factory=dict)
    # Calls to these methods are recorded, then not answered until the event is set (a stalled API).
    held: dict[str, asyncio.Event] = field(default_factory=dict)
    _next_update_id: int = 804211800
    _message_ids: dict[int, itertools.count[int]] = field(default_factory=dict)
    _poll_generation: int = 0
    _closed: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def user(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": True, "first_name": self.first_name, "username": self.username}

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def push(self, update: dict[str, Any]) -> int:
        """Queue an update (its own ``update_id`` kept if it has one); returns the id."""
        update = dict(update)
        if "update_id" not in update:
            update["update_id"] = self._next_update_id
        self._next_update_id = max(self._next_update_id, update["update_id"]) + 1
        self.pending.append(update)
        self.pending.sort(key=lambda u: u["update_id"])
        self._notify()
        return int(update["update_id"])

    def fail_next(self, method: str, *errors: ScriptedError) -> None:
        self.scripts.setdefault(method, []).extend(errors)

    def add_file(self, file_id: str, content: bytes | None = None, *, size: int | None = None,
                 file_path: str | None = None) -> None:
        """``content=None`` with a ``size``: a file too large to ever be served."""
        path = file_path or f"documents/{file_id}.bin"
        self.files[file_id] = StoredFile(file_id, path, content, size if size is not None else len(content or b""))

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class FakeBotApi:
    def __init__(self, *, webhook_retry_delay: float = 0.05) -> None:
        self.bots: dict[str, FakeBot] = {}
        self.url = ""
        self.webhook_retry_delay = webhook_retry_delay
        self._session: aiohttp.ClientSession | None = None
        self._deliverers: dict[str, asyncio.Task[None]] = {}

    def add_bot(self, token: str, bot_id: int = 7012345678, username: str = "acme_support_bot") -> FakeBot:
        bot = FakeBot(token=token, id=bot_id, username=username)
        self.bots[token] = bot
        return bot

    # -- HTTP -----------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        return app

    async def _params(self, request: web.Request) -> dict[str, Any]:
        raw: dict[str, Any] = dict(request.query)
        ctype = request.content_type
        if request.method == "POST" and request.can_read_body:
            if ctype == "application/json":
                body = await request.json()
                return {**raw, **(body if isinstance(body, dict) else {})}
            if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                raw.update({k: v for k, v in form.items() if isinstance(v, str)})
        params: dict[str, Any] = {}
        for key, value in raw.items():
            if key in _STRING_PARAMS or not isinstance(value, str):
                params[key] = value
                continue
            try:
                params[key] = json.loads(value)
            except json.JSONDecodeError:
                params[key] = value
        return params

    async def _method(self, request: web.Request) -> web.Response:
        bot = self.bots.get(request.match_info["token"])
        if bot is None:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = await self._params(request)
        bot.calls.append(Call(method, params))
        if method in bot.held:
            await bot.held[method].wait()
        scripted = bot.scripts.get(method)
        if scripted:
            error = scripted.pop(0)
            return web.json_response(error.body(), status=error.status)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        try:
            result = await handler(bot, params)
        except ScriptedErrorRaised as exc:
            return web.json_response(exc.error.body(), status=exc.error.status)
        return web.json_response({"ok": True, "result": result})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        bot = self.bots.get(request.match_info["token"])
        path = request.match_info["path"]
        stored = next((f for f in bot.files.values() if f.file_path == path), None) if bot else None
        if bot is None or stored is None or stored.content is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        bot.downloads.append(path)
        return web.Response(body=stored.content, content_type="application/octet-stream")

    # -- methods ----------------------------------------------------------------

    async def _m_getMe(self, bot: FakeBot, params: dict[str, Any]) -> Any:
        return {**bot.user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False}

    async def _m_getUpdates(self, bot: FakeBot, params: dict[str, Any]) -> Any:
        if bot.webhook is not None:
            raise ScriptedErrorRaised(ScriptedError(
                409, "Conflict: can't use getUpdates method while webhook is active; "
                     "use deleteWebhook to delete the webhook first"))
        bot._poll_generation += 1
        generation = bot._poll_generation
        bot._notify()  # wakes (and thereby terminates) an older long poll
        offset = params.get("offset")
        if isinstance(offset, int) and offset > 0:
            bot.pending = [u for u in bot.pending if u["update_id"] >= offset]
        limit = params.get("limit") if isinstance(params.get("limit"), int) else 100
        timeout = params.get("timeout") if isinstance(params.get("timeout"), int | float) else 0
        deadline = time.monotonic() + max(0.0, float(timeout))
        while True:
            if generation != bot._poll_generation:
                bot.conflicts += 1
                raise ScriptedErrorRaised(ScriptedError(
                    409, "Conflict: terminated by other getUpdates request; "
                         "make sure that only one bot instance is running"))
            if bot.pending:
                if bot.poll_delay:
                    await asyncio.sleep(bot.poll_delay)
                return bot.pending[: max(1, min(100, limit, bot.batch_limit))]
            remaining = deadline - time.monotonic()
            if bot._closed:
                return []
            if remaining <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):  # not wait_for: on 3.11 it can drop a cancellation
                    await bot._changed.wait()

    async def _m_setWebhook(self, bot: FakeBot, params: dict[str, Any]) -> Any:
        url = params.get("url") or ""
        if not url:
            return await self._m_deleteWebhook(bot, params)
        bot.webhook = {"url": url, "secret_token": params.get("secret_token"),
                       "allowed_updates": params.get("allowed_updates")}
        if params.get("drop_pending_updates") is True:
            bot.pending.clear()
        self._start_delivery(bot)
        bot._notify()
        return True

    async def _m_deleteWebhook(self, bot: FakeBot, params: dict[str, Any]) -> Any:
        bot.webhook = None
        if params.get("drop_pending_updates") is True:
            bot.pending.clear()
        task = self._deliverers.pop(bot.token, None)
        if task is not None:
            task.cancel()
            await asyncio.wait({task})  # not ``await task`` under suppress: that would swallow our own cancel
        return True

    async def _m_getWebhookInfo(self, bot: FakeBot, params: dict[str, Any]) -> Any:
        return {"url": (bot.webhook or {}).get("url", ""), "has_custom_certificate": False,
                "pending_update_count": len(bot.pending)}

    async def _m_sendMessage(self, bot: FakeBot, params: dict[str, Any]) -> Any:
        chat_id = params.get("chat_id")
        text = params.get("text")
        if not isinstance(chat_id, int):
            raise ScriptedErrorRaised(CHAT_NOT_FOUND)
        if not isinstance(text, str) or not text.strip():
            raise ScriptedErrorRaised(ScriptedError(400, "Bad Request: message text is empty"))
        ids = bot._message_ids.setdefault(chat_id, itertools.count(1000))
        chat: dict[str, Any] = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
        result: dict[str, Any] = {"message_id": next(ids), "from": bot.user, "chat": chat,
                                  "date": int(time.time()), "text": text}
        reply = params.get("reply_parameters")
        reply_id = reply.get("message_id") if isinstance(reply, dict) else params.get("reply_to_message_id")
        if isinstance(reply_id, int):
            result["reply_to_message"] = {"message_id": reply_id, "chat": chat, "date": int(time.time())}
        bot.sent.append(result)
        return result

    async def _m_answerCallbackQuery(self, bot: FakeBot, params: dict[str, Any]) -> Any:
        if not isinstance(params.get("callback_query_id"), str | int):
            raise ScriptedErrorRaised(ScriptedError(400, "Bad Request: query is too old and response timeout expired"))
        return True

    async def _m_getFile(self, bot: FakeBot, params: dict[str, Any]) -> Any:
        stored = bot.files.get(str(params.get("file_id")))
        if stored is None:
            raise ScriptedErrorRaised(ScriptedError(400, "Bad Request: invalid file_id"))
        if stored.size > FILE_SIZE_LIMIT:
            raise ScriptedErrorRaised(ScriptedError(400, "Bad Request: file is too big"))
        return {"file_id": stored.file_id, "file_unique_id": f"u{stored.file_id[:8]}", "file_size": stored.size,
                "file_path": stored.file_path}

    # -- webhook delivery -----------------------------------------------------

    def _start_delivery(self, bot: FakeBot) -> None:
        task = self._deliverers.get(bot.token)
        if task is None or task.done():
            self._deliverers[bot.token] = asyncio.create_task(self._deliver(bot), name=f"fake-tg-webhook-{bot.id}")

    async def _deliver(self, bot: FakeBot) -> None:
        assert self._session is not None
        while bot.webhook is not None:
            if not bot.pending:
                await bot._changed.wait()
                continue
            update = bot.pending[0]
            headers = {"Content-Type": "application/json"}
            if bot.webhook.get("secret_token"):
                headers["X-Telegram-Bot-Api-Secret-Token"] = bot.webhook["secret_token"]
            try:
                async with self._session.post(bot.webhook["url"], data=json.dumps(update), headers=headers) as resp:
                    status = resp.status
            except (aiohttp.ClientError, OSError):
                status = 0
            bot.webhook_deliveries.append((update["update_id"], status))
            if 200 <= status < 300:
                if bot.pending and bot.pending[0] is update:
                    bot.pending.pop(0)
                bot._notify()
            else:
                await asyncio.sleep(self.webhook_retry_delay)

    # -- lifecycle ------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FakeBotApi]:
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            yield self
        finally:
            for task in self._deliverers.values():
                task.cancel()
            await asyncio.gather(*self._deliverers.values(), return_exceptions=True)
            for bot in self.bots.values():
                bot._closed = True
                bot._notify()  # release long polls so the server can stop
            await self._session.close()
            await runner.cleanup()


class ScriptedErrorRaised(Exception):
    def __init__(self, error: ScriptedError) -> None:
        super().__init__(error.description)
        self.error = error


async def wait_until(predicate: Any, limit: float = 15.0, interval: float = 0.02) -> None:
    """Poll ``predicate`` (sync or async) until true; fail the test after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
