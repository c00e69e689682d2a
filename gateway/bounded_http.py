"""uvicorn's httptools protocol with a bound on the request head.

httptools (llhttp) has no header size limit of its own: a client could send
headers forever and the server would buffer them all. This protocol counts
the bytes of a request head as they arrive and answers 431 and closes once
they pass ``SERVER_MAX_HEAD_BYTES``. (uvicorn's h11 protocol has the same
bound built in: ``h11_max_incomplete_event_size``.) The app's own, lower
limits (``gateway.limits``) answer first for heads that fit.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.config import SERVER_MAX_HEAD_BYTES

# The API's error shape (gateway.http.error_response), written by hand: no app runs here.
_BODY = (
    b'{"error":{"code":"request_headers_too_large","message":"request head over '
    + str(SERVER_MAX_HEAD_BYTES).encode()
    + b' bytes"}}'
)
RESPONSE_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _BODY
)


# How long the rest of a refused head is drained before the connection is closed anyway.
REFUSED_GRACE = 2.0


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = SERVER_MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._heads = 0  # request heads completed on this connection
        self._in_body = False
        self._head_bytes = 0  # bytes received since the last head completed, while no body was being read
        self._refused: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:
            return  # the rest of a refused head: read and dropped, never buffered
        heads = self._heads
        super().data_received(data)
        # Counted only for a chunk that completed no head (one that did may carry a whole
        # request, body included) and that did not end inside a body.
        if self._heads == heads and not self._in_body and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse()

    def _refuse(self) -> None:
        """Answer 431, then close gently: closing a socket whose client is still sending
        makes the kernel reset the connection, and a reset can destroy the answer before
        the client reads it. So the write side is shut, the client's bytes are drained
        and dropped, and the connection is closed when the client stops or after a grace."""
        self.transport.write(RESPONSE_431)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._refused = self.loop.call_later(REFUSED_GRACE, self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused is not None:
            self._refused.cancel()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._heads += 1
        self._in_body = True
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False  # what follows on this connection is the next request's head
        super().on_message_complete()
