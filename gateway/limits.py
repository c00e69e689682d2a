"""Request-size limits the HTTP server leaves to the app.

uvicorn bounds a request head only loosely (h11: one size for the whole head;
httptools: none of its own), and counts no headers at all. This middleware
answers 431 for a request with too many headers or too many header bytes
before any route runs; ``serve`` configures the server's own bound above
these, so the app's 431 is what a client sees.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.http import error_response

# Close code for a WebSocket handshake refused for its headers (the handshake
# itself answers 403: ASGI servers turn a close before accept into one).
WS_POLICY_VIOLATION = 1008


class HeaderLimits:
    def __init__(self, app: ASGIApp, *, max_count: int, max_bytes: int) -> None:
        self.app = app
        self.max_count = max_count
        self.max_bytes = max_bytes

    def _problem(self, scope: Scope) -> str | None:
        headers = scope.get("headers") or []
        if len(headers) > self.max_count:
            return f"more than {self.max_count} request headers"
        # ": " and CRLF per line, as on the wire.
        size = sum(len(name) + len(value) + 4 for name, value in headers)
        if size > self.max_bytes:
            return f"request headers over {self.max_bytes} bytes"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and (problem := self._problem(scope)) is not None:
            if scope["type"] == "http":
                await error_response(431, "request_headers_too_large", problem)(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION, "reason": problem})
            return
        await self.app(scope, receive, send)
