"""uvicorn's httptools protocol with a bound on the request head.

httptools (llhttp) has no header size limit of its own: a client could send
headers forever and the server would buffer them all. This protocol counts
the bytes of a request head as they arrive and answers 431 and closes once
they pass ``SERVER_MAX_HEAD_BYTES``. (uvicorn's h11 protocol has the same
bound built in: ``h11_max_incomplete_event_size``.) The app's own, lower
limits (``gateway.limits``) answer first for heads that fit.
"""

from __future__ import annotations

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


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = SERVER_MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._heads = 0  # request heads completed on this connection
        self._in_body = False
        self._head_bytes = 0  # bytes received since the last head completed, while no body was being read

    def data_received(self, data: bytes) -> None:
        heads = self._heads
        super().data_received(data)
        # Counted only for a chunk that completed no head (one that did may carry a whole
        # request, body included) and that did not end inside a body.
        if self._heads == heads and not self._in_body and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self.transport.write(RESPONSE_431)
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._heads += 1
        self._in_body = True
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False  # what follows on this connection is the next request's head
        super().on_message_complete()
