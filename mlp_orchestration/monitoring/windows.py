"""Fixed-length windows aligned to the Unix epoch, counted back from the newest event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_floor(moment: datetime, length: timedelta) -> datetime:
    """Return the start of the window of ``length`` that contains ``moment``."""
    steps = (moment - _EPOCH) // length
    return _EPOCH + steps * length


def recent_windows(
    newest: datetime, *, length: timedelta, lookback: timedelta
) -> list[tuple[datetime, datetime]]:
    """Return [start, end) windows covering ``lookback`` up to the one containing ``newest``."""
    last_start = window_floor(newest, length)
    first_start = window_floor(newest - lookback, length)
    windows = []
    start = first_start
    while start <= last_start:
        windows.append((start, start + length))
        start += length
    return windows
