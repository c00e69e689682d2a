"""Reconnect backoff of the Redis broker: 1 s doubling to 60 s with jitter, never > 6 tries in 30 s."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.backoff import ReconnectBackoff


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_delays_start_at_zero_then_double_from_one_second_to_a_sixty_second_cap():
    clock = Clock()
    backoff = ReconnectBackoff(clock=clock, rand=lambda: 1.0)  # no jitter: the upper bound
    delays = []
    for _ in range(10):
        delay = backoff.next_delay()
        delays.append(delay)
        clock.now += delay
    assert delays[:8] == [0, 1, 2, 4, 8, 16, 32, 60]
    assert delays[8:] == [60, 60]


def test_jitter_keeps_each_delay_between_half_and_all_of_its_step():
    clock = Clock()
    backoff = ReconnectBackoff(clock=clock, rand=lambda: 0.0)
    delays = [backoff.next_delay() for _ in range(4)]
    assert delays[1:3] == [0.5, 1.0]


def test_reset_after_a_stable_connection_starts_over():
    clock = Clock()
    backoff = ReconnectBackoff(clock=clock, rand=lambda: 1.0)
    for _ in range(5):
        clock.now += backoff.next_delay()
    backoff.reset()
    clock.now += 100
    assert backoff.next_delay() == 0


@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=40),
       st.lists(st.integers(min_value=0, max_value=8), min_size=1, max_size=40))
def test_no_more_than_six_attempts_fall_in_any_thirty_seconds(jitters, resets_after):
    """Even when connections keep succeeding briefly and resetting the backoff."""
    clock = Clock()
    rolls = iter(jitters * 100)
    backoff = ReconnectBackoff(clock=clock, rand=lambda: next(rolls))
    attempts = []
    for i in range(60):
        clock.now += backoff.next_delay()
        attempts.append(clock.now)
        if i % (resets_after[i % len(resets_after)] + 1) == 0:
            backoff.reset()
    for i, start in enumerate(attempts):
        in_window = [t for t in attempts[i:] if t < start + 30]
        assert len(in_window) <= 6
