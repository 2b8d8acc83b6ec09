"""Daily cost series and the robust statistics the forecast and the baselines share.

A *daily series* maps a UTC day to that day's cost (exact :class:`~decimal.Decimal`). Days
missing from the mapping cost nothing. Everything here is pure and deterministic.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import TypeVar

from exporter.records import CostRecord, Stream

K = TypeVar("K")
DailySeries = Mapping[date, Decimal]
ZERO = Decimal(0)


def daily_by_stream(costs: Iterable[CostRecord]) -> dict[Stream, dict[date, Decimal]]:
    """Sum cost per stream and day: what the baselines, forecasts and budgets share
    (computed once per refresh by ``compute_governance``)."""
    out: dict[tuple[str, str, str, str], dict[date, Decimal]] = {}
    for c in costs:
        k = (c.provider, c.account, c.project, c.model)
        daily = out.get(k)
        if daily is None:
            daily = out[k] = {}
        daily[c.day] = daily.get(c.day, ZERO) + c.amount
    return {Stream(*k): v for k, v in out.items()}


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


def _by_weekday(
    daily: DailySeries, days: Sequence[date], min_per_weekday: int
) -> tuple[dict[int, list[tuple[date, Decimal]]], Decimal] | None:
    """Days grouped by weekday, and the mean of the seven weekday medians (None: too few
    days of some weekday, or no cost at all)."""
    groups: dict[int, list[tuple[date, Decimal]]] = defaultdict(list)
    for d in days:
        groups[d.weekday()].append((d, daily.get(d, ZERO)))
    if len(groups) < 7 or min(len(v) for v in groups.values()) < min_per_weekday:
        return None
    norm = mean([median([v for _, v in g]) for g in groups.values()])
    return (groups, norm) if norm > 0 else None


def weekday_factors(
    daily: DailySeries, days: Sequence[date], min_per_weekday: int
) -> dict[int, Decimal] | None:
    """Weekly pattern as multiplicative factors per ``date.weekday()``, averaging 1.

    The factor of a weekday is the median of that weekday's values over the mean of the
    seven weekday medians (medians: one unusual Monday does not move every Monday). None
    when some weekday has fewer than ``min_per_weekday`` days or there is no cost at all.
    """
    found = _by_weekday(daily, days, min_per_weekday)
    if found is None:
        return None
    groups, norm = found
    return {w: median([v for _, v in g]) / norm for w, g in groups.items()}


def leave_one_out_factors(
    daily: DailySeries, days: Sequence[date], min_per_weekday: int
) -> dict[date, Decimal] | None:
    """For each day, its weekday's factor learnt **without** that day, so the day can be
    judged out of sample, as a new day would be."""
    found = _by_weekday(daily, days, min_per_weekday)
    if found is None:
        return None
    groups, norm = found
    out = {}
    for group in groups.values():
        for i, (d, _) in enumerate(group):
            others = [v for j, (_, v) in enumerate(group) if j != i]
            out[d] = median(others) / norm
    return out
