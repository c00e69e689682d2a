"""Reconnect delays: exponential from 1 s to a 60 s cap, with jitter (DESIGN §6 "Reconnects")."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays ``base·2ⁿ`` capped at ``cap``, each scaled by a random factor in [0.75, 1].

    Jitter only ever shortens a delay by a quarter, so with the defaults no 30 s
    window holds more than 6 attempts (0, ≥0.75, ≥2.25, ≥5.25, ≥11.25, ≥23.25 s;
    the next is ≥47 s). ``reset`` only after a connection proved healthy for a
    while: a server that accepts the login and drops us at once must not turn
    into a 1-second loop.
    """

    def __init__(self, base: float = 1.0, cap: float = 60.0, *, rng: Callable[[], float] = random.random) -> None:
        if base <= 0 or cap < base:
            raise ValueError("need 0 < base <= cap")
        self.base = base
        self.cap = cap
        self._rng = rng
        self.failures = 0

    def next_delay(self) -> float:
        nominal = min(self.cap, self.base * 2.0 ** min(self.failures, 32))
        self.failures += 1
        return nominal * (0.75 + 0.25 * self._rng())

    def reset(self) -> None:
        self.failures = 0
