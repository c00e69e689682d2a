"""Headers every response carries, whoever produced it (route, 404, error handler, 500).

``SecurityHeaders`` wraps the whole Starlette stack (outside its
``ServerErrorMiddleware``), so a 500 gets them too. On WebSockets it adds them
to a denial response, and turns a close before accept (Starlette's answer to
a WebSocket on an unknown path) into an explicit 403 denial that carries them,
when the server supports the ``websocket.http.response`` extension (uvicorn
does); otherwise the server's own 403 goes out without them.

Responses the server writes on its own before the app runs (a malformed
request, oversized headers) never pass here.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
# Pages that set a Content-Security-Policy of their own keep it; everything else
# may not be framed.
DEFAULT_CSP = (b"content-security-policy", b"frame-ancestors 'none'")
FRAME_OPTIONS = (b"x-frame-options", b"DENY")

_REFUSED_BODY = b"WebSocket connection refused\n"
_REFUSED_HEADERS = ((b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(_REFUSED_BODY)))


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in headers}
    added = [h for h in (*HEADERS, DEFAULT_CSP, FRAME_OPTIONS) if h[0] not in present]
    return [*headers, *added]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.app(scope, receive, self._http_send(send))
        elif scope["type"] == "websocket":
            can_deny = "websocket.http.response" in scope.get("extensions", {})
            await self.app(scope, receive, self._websocket_send(send, can_deny))
        else:
            await self.app(scope, receive, send)

    @staticmethod
    def _http_send(send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": with_security_headers(list(message.get("headers", [])))}
            await send(message)

        return wrapped

    @staticmethod
    def _websocket_send(send: Send, can_deny: bool) -> Send:
        accepted = False

        async def wrapped(message: Message) -> None:
            nonlocal accepted
            kind = message["type"]
            if kind == "websocket.accept":
                accepted = True
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            elif kind == "websocket.http.response.start":
                message = {**message, "headers": with_security_headers(list(message.get("headers", [])))}
            elif kind == "websocket.close" and not accepted and can_deny:
                await send({"type": "websocket.http.response.start", "status": 403,
                            "headers": with_security_headers(list(_REFUSED_HEADERS))})
                await send({"type": "websocket.http.response.body", "body": _REFUSED_BODY})
                return
            await send(message)

        return wrapped
