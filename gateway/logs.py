"""Log setup for every command: one handler on the root logger, text or JSON lines.

Each line can carry what is known about the work it belongs to — the request
id, account, channel and event seq — from context variables bound by the
request middleware, authentication, the webhook channel lookup and the
publisher. Being context variables, they follow the task (one per request)
and never leak into another request's lines.

uvicorn is started with ``log_config=None`` so its loggers (``uvicorn.error``,
``uvicorn.access``) propagate here instead of to handlers of their own: every
line of the process then has one format and passes the same filters.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
ACCOUNT_ID: contextvars.ContextVar[int | None] = contextvars.ContextVar("account_id", default=None)
CHANNEL_ID: contextvars.ContextVar[int | None] = contextvars.ContextVar("channel_id", default=None)
EVENT_SEQ: contextvars.ContextVar[int | None] = contextvars.ContextVar("event_seq", default=None)

_CONTEXT = (("request_id", REQUEST_ID), ("account_id", ACCOUNT_ID), ("channel_id", CHANNEL_ID),
            ("seq", EVENT_SEQ))
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the bound context."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in _CONTEXT:
            value = var.get()
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii: a lone surrogate or control byte in a message can never
        # break the line (or the log shipper's decoder).
        return json.dumps(entry, ensure_ascii=True, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with ``[request id]`` appended when the line belongs to a request."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = REQUEST_ID.get()
        return f"{line} [{request_id}]" if request_id else line


def configure_logging(level: str, fmt: str = "text") -> logging.Handler:
    """Replace the root logger's handlers with one stderr handler in ``fmt``; return it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if level == "trace" else level.upper())  # "trace" is uvicorn's own level
    # pgserver logs every pg_ctl command line and its full output at INFO.
    logging.getLogger("pgserver").setLevel(logging.WARNING if root.level > logging.DEBUG else logging.NOTSET)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).propagate = True
    return handler


# A proxy's id is kept only if it is short and plain, so it cannot forge log
# structure or carry a payload into every line.
_REQUEST_ID_SHAPE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def accepted_request_id(value: str | None) -> str:
    if value and _REQUEST_ID_SHAPE.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Every HTTP request and WebSocket gets an ``X-Request-Id``: the proxy's, else a new one.

    It is bound for the request's log lines and returned on HTTP responses.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers") or ()).get(b"x-request-id")
        request_id = accepted_request_id(raw.decode("latin-1") if raw else None)
        REQUEST_ID.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await self.app(scope, receive, send_with_id)
