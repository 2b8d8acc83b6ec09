"""Period-end forecasts: spend so far plus a weekday-aware run rate of recent complete days.

For a period ``[start, end)`` that contains ``today``:

    forecast = cost of the complete days since ``start``
             + max(cost so far today, expected cost of today)
             + expected cost of each remaining day

Today's partial cost is a floor, never the estimate: providers report a day late and in
pieces. The *expected cost* of a day comes from :func:`run_rate`, by history length:

* 0 complete days of data (a stream first seen today): nothing is added; the forecast is
  the spend so far.
* 1-6 days: the plain mean of those days.
* 7+ days (up to the last 28): a weekly pattern (median per weekday, over the mean of the
  seven) times a level: the last 14 complete days with the pattern divided out, highest
  and lowest dropped, averaged. A weekday-heavy workload is thus not over-forecast over a
  weekend, growth shows within two weeks, and one spike day does not set the run rate.

``benchmarks/forecast_backtest.py`` measures the mid-month error of this on a year of
synthetic history; the README reports the figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from exporter.analytics.series import (
    ZERO,
    DailySeries,
    daily_by_stream,
    history_days,
    mean,
    weekday_factors,
)
from exporter.records import CostRecord, Stream

RUN_RATE_DAYS = 28  # complete days the weekly pattern is estimated from
LEVEL_DAYS = 14  # the most recent complete days that set the level
MIN_PATTERN_DAYS = 7  # below this, the plain mean of the days there are


@dataclass(frozen=True)
class RunRate:
    """Expected cost of a future day, learnt from complete days before ``today``."""

    level: Decimal  # the cost of an average day
    factors: dict[int, Decimal] | None  # weekday -> multiplier (mean 1); None: flat
    history: int  # complete days it was learnt from

    def expected(self, day: date) -> Decimal:
        return self.level * (self.factors[day.weekday()] if self.factors else 1)


def run_rate(daily: DailySeries, today: date) -> RunRate:
    days = history_days(daily, today, RUN_RATE_DAYS)
    values = [daily.get(d, ZERO) for d in days]
    if not days:
        return RunRate(ZERO, None, 0)
    factors = weekday_factors(daily, days, 1) if len(days) >= MIN_PATTERN_DAYS else None
    if factors is None:
        return RunRate(mean(values), None, len(days))
    recent = [
        daily.get(d, ZERO) / factors[d.weekday()]
        for d in days[-LEVEL_DAYS:]
        if factors[d.weekday()] > 0
    ]
    return RunRate(_trimmed_mean(recent), factors, len(days))


def _trimmed_mean(values: list[Decimal]) -> Decimal:
    """Mean without the highest and the lowest value (one spike does not set the rate)."""
    ordered = sorted(values)
    return mean(ordered[1:-1] if len(ordered) >= 5 else ordered) if ordered else ZERO


def forecast_period(daily: DailySeries, today: date, start: date, end: date) -> Decimal:
    """Projected total of ``[start, end)``; ``today`` must lie in it."""
    if not start <= today < end:
        raise ValueError("today must lie inside the period")
    rate = run_rate(daily, today)
    spent = sum((v for d, v in daily.items() if start <= d < today), ZERO)
    total = spent + max(daily.get(today, ZERO), rate.expected(today))
    day = today + timedelta(days=1)
    while day < end:
        total += rate.expected(day)
        day += timedelta(days=1)
    return total


def month_end(today: date) -> date:
    """The first day of the next month (the exclusive end of today's month)."""
    return (today.replace(day=1) + timedelta(days=32)).replace(day=1)


def month_end_forecasts(
    costs: Iterable[CostRecord],
    today: date,
    series: Mapping[Stream, DailySeries] | None = None,
) -> dict[Stream, Decimal]:
    """``aicost_cost_forecast_month_end`` per stream (all cost types together).

    ``costs`` must cover the last :data:`RUN_RATE_DAYS` complete days and the month so far;
    every stream with a row there gets a forecast (the month to date when it is idle).
    """
    first, end = today.replace(day=1), month_end(today)
    series = daily_by_stream(costs) if series is None else series
    return {s: forecast_period(daily, today, first, end) for s, daily in series.items()}
