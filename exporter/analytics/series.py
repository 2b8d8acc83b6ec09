"""Daily cost series and the robust statistics the forecast and the baselines share.

A *daily series* maps a UTC day to that day's cost (exact :class:`~decimal.Decimal`). Days
missing from the mapping cost nothing. Everything here is pure and deterministic.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import TypeVar

from exporter.records import CostRecord

K = TypeVar("K")
DailySeries = Mapping[date, Decimal]
ZERO = Decimal(0)


def daily_by(
    costs: Iterable[CostRecord], key: Callable[[CostRecord], K | None]
) -> dict[K, dict[date, Decimal]]:
    """Sum cost per ``key(row)`` and day; rows whose key is None are skipped."""
    out: dict[K, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for c in costs:
        k = key(c)
        if k is not None:
            out[k][c.day] += c.amount
    return {k: dict(v) for k, v in out.items()}


def history_days(daily: DailySeries, before: date, days: int) -> list[date]:
    """The complete days ``[before - days, before)`` from the series' first day with data on.

    A stream that started recently has a short history: the days before its first day are
    not zeros, they are not history at all. Days after its first day without data are zeros.
    """
    active = [d for d, v in daily.items() if v and d < before]
    if not active:
        return []
    first = max(min(active), before - timedelta(days=days))
    return [first + timedelta(days=i) for i in range((before - first).days)]


def median(values: Sequence[Decimal]) -> Decimal:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of nothing")
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def mean(values: Sequence[Decimal]) -> Decimal:
    if not values:
        raise ValueError("mean of nothing")
    return sum(values, ZERO) / len(values)


def weekday_factors(
    daily: DailySeries, days: Sequence[date], min_per_weekday: int, *, leave_out: date | None = None
) -> dict[int, Decimal] | None:
    """Weekly pattern as multiplicative factors per ``date.weekday()``, averaging 1.

    The factor of a weekday is the median of that weekday's values over the mean of the
    seven weekday medians (medians: one unusual Monday does not move every Monday). None
    when some weekday has fewer than ``min_per_weekday`` days or there is no cost at all.
    ``leave_out`` drops one day from its weekday's median, to judge that day out of sample.
    """
    by_weekday: dict[int, list[Decimal]] = defaultdict(list)
    for d in days:
        by_weekday[d.weekday()].append(daily.get(d, ZERO))
    if len(by_weekday) < 7 or min(len(v) for v in by_weekday.values()) < min_per_weekday:
        return None
    medians = {w: median(v) for w, v in by_weekday.items()}
    norm = mean(list(medians.values()))
    if norm <= 0:
        return None
    if leave_out is not None:
        others = list(by_weekday[leave_out.weekday()])
        others.remove(daily.get(leave_out, ZERO))
        if others:
            medians[leave_out.weekday()] = median(others)
    return {w: m / norm for w, m in medians.items()}
