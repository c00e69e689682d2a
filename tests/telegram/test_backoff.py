from __future__ import annotations

import itertools

from gateway.backoff import ReconnectBackoff as Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def attempts_after(backoff: Backoff, clock: Clock, failures: int) -> list[float]:
    """When each attempt happens if every one fails at once."""
    times = []
    for _ in range(failures):
        clock.now += backoff.next_delay()
        times.append(clock.now)
    return times


def test_the_first_attempt_is_immediate_then_delays_double_with_jitter_up_to_a_minute():
    clock = Clock()
    backoff = Backoff(clock=clock)
    times = attempts_after(backoff, clock, 40)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] == 1000.0
    assert 0.5 <= gaps[0] <= 1.0
    assert all(gap <= 60.0 for gap in gaps)
    assert all(gap >= 30.0 for gap in gaps[10:])  # well into the cap


def test_never_more_than_six_attempts_in_any_thirty_seconds():
    clock = Clock()
    backoff = Backoff(clock=clock)
    times = attempts_after(backoff, clock, 12)
    for i, start in enumerate(times):
        assert len([t for t in times[i:] if t < start + 30.0]) <= 6


def test_a_success_resets_to_an_immediate_retry_but_the_window_still_holds():
    clock = Clock()
    backoff = Backoff(clock=clock)
    times = []
    for _ in range(10):  # flapping: every connection succeeds once, then fails
        clock.now += backoff.next_delay()
        times.append(clock.now)
        backoff.reset()
    for i, start in enumerate(times):
        assert len([t for t in times[i:] if t < start + 30.0]) <= 6
