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
        self._in_head = True
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        in_head = self._in_head
        super().data_received(data)
        # Counted after feeding: a chunk that completes the head (and may carry a body) is not.
        if in_head and self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self.transport.write(RESPONSE_431)
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # the next request on this connection starts with a head
