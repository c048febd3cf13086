"""Rate limiting for an error that recurs on every poll, so an outage writes a few log lines.

``RepeatedError`` tracks one recurring error. It lets the caller log the first occurrence,
every occurrence whose text differs from the last logged one, and one occurrence per
``interval_s`` seconds while the text stays the same, each with the count of occurrences it
stands for. Metrics should still count every occurrence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple


class Occurrence(NamedTuple):
    """An occurrence to log: how many occurred in all and since the last logged one."""

    total: int
    since_logged: int
    seconds_since_logged: float


class RepeatedError:
    """Decides which occurrences of a recurring error get a log line."""

    def __init__(self, *, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._text: str | None = None
        self._logged_at = 0.0
        self._total = 0
        self._since_logged = 0

    @property
    def active(self) -> bool:
        """Whether the error has occurred since the last ``clear``."""
        return self._total > 0

    def occur(self, text: str) -> Occurrence | None:
        """Record one occurrence; return what to log, or None when this one stays silent."""
        now = self._clock()
        self._total += 1
        self._since_logged += 1
        changed = text != self._text
        if not changed and now - self._logged_at < self._interval_s:
            return None
        occurrence = Occurrence(
            total=self._total,
            since_logged=self._since_logged,
            seconds_since_logged=0.0 if self._text is None else now - self._logged_at,
        )
        self._text = text
        self._logged_at = now
        self._since_logged = 0
        return occurrence

    def clear(self) -> int:
        """End the error; return how many times it occurred since it began (0 if it never did)."""
        total = self._total
        self._text = None
        self._total = 0
        self._since_logged = 0
        return total
