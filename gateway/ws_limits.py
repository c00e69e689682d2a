"""How many WebSockets one API key may hold open on this process.

A key that opens sockets without bound would hold a queue and two tasks per
socket; past ``GATEWAY_WS_MAX_PER_KEY`` a new socket is closed with
:data:`CLOSE_TOO_MANY_SOCKETS` right after the handshake. The count is per
gateway process (each process bounds its own memory).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

# 4000-4999 are for applications; 4429 echoes HTTP 429 Too Many Requests.
CLOSE_TOO_MANY_SOCKETS = 4429


class TooManySockets(Exception):
    pass


class SocketQuota:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[int, int] = {}

    def count(self, key_id: int) -> int:
        return self._open.get(key_id, 0)

    @contextlib.contextmanager
    def hold(self, key_id: int) -> Iterator[None]:
        """One slot of ``key_id`` for the duration of the block, or TooManySockets."""
        if self.count(key_id) >= self.limit:
            raise TooManySockets(f"this API key already has {self.limit} open WebSockets")
        self._open[key_id] = self.count(key_id) + 1
        try:
            yield
        finally:
            left = self._open[key_id] - 1
            if left:
                self._open[key_id] = left
            else:
                del self._open[key_id]
