"""Which occurrences of a recurring error get a log line."""

from __future__ import annotations

from mlp_orchestration.serving.repeats import Occurrence, RepeatedError


class Clock:
    """A settable monotonic clock, so the interval can pass without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_first_occurrence_logged() -> None:
    repeated = RepeatedError(interval_s=300, clock=Clock())
    assert not repeated.active
    assert repeated.occur("disk full") == Occurrence(
        total=1, since_logged=1, seconds_since_logged=0.0
    )
    assert repeated.active


def test_same_text_silent_within_interval() -> None:
    clock = Clock()
    repeated = RepeatedError(interval_s=300, clock=clock)
    repeated.occur("disk full")
    for _ in range(50):
        clock.now += 2
        assert repeated.occur("disk full") is None


def test_same_text_logged_after_interval_with_count() -> None:
    clock = Clock()
    repeated = RepeatedError(interval_s=300, clock=clock)
    repeated.occur("disk full")
    for _ in range(149):
        clock.now += 2
        assert repeated.occur("disk full") is None
    clock.now += 2
    assert repeated.occur("disk full") == Occurrence(
        total=151, since_logged=150, seconds_since_logged=300.0
    )
    clock.now += 2
    assert repeated.occur("disk full") is None


def test_changed_text_logged_at_once() -> None:
    clock = Clock()
    repeated = RepeatedError(interval_s=300, clock=clock)
    repeated.occur("disk full")
    clock.now += 2
    repeated.occur("disk full")
    clock.now += 2
    assert repeated.occur("permission denied") == Occurrence(
        total=3, since_logged=2, seconds_since_logged=4.0
    )
    clock.now += 2
    assert repeated.occur("permission denied") is None


def test_clear_returns_total_and_restarts() -> None:
    clock = Clock()
    repeated = RepeatedError(interval_s=300, clock=clock)
    assert repeated.clear() == 0
    for _ in range(7):
        repeated.occur("disk full")
    assert repeated.clear() == 7
    assert not repeated.active
    assert repeated.occur("disk full") == Occurrence(
        total=1, since_logged=1, seconds_since_logged=0.0
    )
