"""Reconnect delays for every connection the gateway keeps up (DESIGN §6 "Reconnects").

Used by the Redis broker and the Telegram poller. The AMI adapter keeps its own
``channels.asterisk.backoff.Backoff``: it only backs off after a failed session
and resets only once a session stayed up a while.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable


class ReconnectBackoff:
    """Delays between connection attempts: 0 for the first, then 1 s doubling to a 60 s cap,
    each scaled by a random 50–100 % (jitter), and never more than ``max_attempts`` in any ``window``.
    """

    def __init__(
        self,
        *,
        first: float = 1.0,
        cap: float = 60.0,
        max_attempts: int = 6,
        window: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.first = first
        self.cap = cap
        self.max_attempts = max_attempts
        self.window = window
        self._clock = clock
        self._rand = rand
        self._attempts: deque[float] = deque(maxlen=max_attempts)
        self._failures = 0

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt (counts it as made when it is due)."""
        now = self._clock()
        if self._failures == 0:
            delay = 0.0
        else:
            base = min(self.cap, self.first * 2 ** (self._failures - 1))
            delay = base * (0.5 + self._rand() / 2)
        if len(self._attempts) == self.max_attempts:
            delay = max(delay, self._attempts[0] + self.window - now)
        self._failures += 1
        self._attempts.append(now + delay)
        return delay

    def reset(self) -> None:
        self._failures = 0
