"""UTC day arithmetic. Days are always UTC; ``now`` is always injected, never read here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def midnight_ts(day: date) -> int:
    return int(midnight(day).timestamp())


def day_range(start: date, end: date) -> Iterator[date]:
    """The days ``[start, end)``."""
    day = start
    while day < end:
        yield day
        day += timedelta(days=1)
