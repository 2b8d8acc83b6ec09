"""Robust daily baselines and anomaly scores per stream, and newly seen streams.

The baseline of a day is learnt from the **28 complete days before it** (only from the
stream's first day with data on; fewer than 7 such days: no baseline, no score):

1. **Weekly pattern.** With at least two of each weekday, every day is divided by its
   weekday factor (median of that weekday over the mean of the seven weekday medians), so
   a quiet weekend followed by a busy Monday is the pattern, not an anomaly.
2. **Level** = the median of the 28 deseasonalised days. **Expected cost** of the scored
   day (``aicost_cost_daily_baseline``) = its weekday factor x the level.
3. **Spread** = 1.4826 x the median absolute deviation (MAD) of the history days' relative
   residuals ``(cost - expected) / expected`` (an estimate of the standard deviation for
   normal noise). Each history day is judged as the scored day will be, against a weekly
   pattern learnt without it: in-sample residuals would understate the spread. The spread
   is never taken below :data:`MIN_SPREAD` (20 %) of the expected cost: daily AI spend
   swings with traffic, and a stream that happened to be flat for four weeks should not
   page anyone for a 30 % day.
4. **Score** (``aicost_cost_anomaly_score``) = (cost - expected) / (spread x expected), a
   robust z-score. Medians everywhere: one spike in the history barely moves the baseline
   of the days after it. A score of 3 needs at least +60 % over the expected cost.

No trend is extrapolated: a growing stream's level lags (by two weeks of growth), which
inflates its spread and makes it slightly less sensitive rather than noisier.

*Sparse* streams (no cost on more than half of the baseline days, e.g. a key used every
other week) are judged on their active days only: the baseline is the median active-day
cost, and an idle day scores 0. A stream idle for its whole baseline that spends again
scores the cap, :data:`SCORE_CAP`. Scores are clamped to ``[-SCORE_CAP, SCORE_CAP]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal

from exporter.analytics.series import (
    ZERO,
    DailySeries,
    daily_by_stream,
    history_days,
    leave_one_out_factors,
    median,
    weekday_factors,
)
from exporter.records import CostRecord, Stream
from exporter.snapshot import Baseline

BASELINE_DAYS = 28
MIN_BASELINE_DAYS = 7
MIN_PER_WEEKDAY = 2  # days of each weekday needed before the weekly pattern is used
MAD_TO_SIGMA = Decimal("1.4826")
MIN_SPREAD = Decimal("0.2")  # relative: the spread is never taken below 20 % of expected
SCORE_CAP = 100.0
NEW_STREAM_DAYS = 7  # a stream first seen on or after today - 7 is "new"


def _clamp(score: Decimal) -> float:
    return max(-SCORE_CAP, min(SCORE_CAP, float(score)))


def _spread(residuals: Sequence[Decimal]) -> Decimal:
    if not residuals:
        return MIN_SPREAD
    center = median(residuals)
    mad = median([abs(r - center) for r in residuals])
    return max(MAD_TO_SIGMA * mad, MIN_SPREAD)


def _score(actual: Decimal, expected: Decimal, scale: Decimal) -> float:
    if scale > 0:
        return _clamp((actual - expected) / scale)
    if actual == expected:
        return 0.0
    return SCORE_CAP if actual > expected else -SCORE_CAP


def _sparse(values: Sequence[Decimal], actual: Decimal) -> Baseline:
    active = [v for v in values if v > 0]
    if not active:
        return Baseline(ZERO, _score(actual, ZERO, ZERO))
    typical = median(active)
    if actual == 0:
        return Baseline(typical, 0.0)
    spread = _spread([(v - typical) / typical for v in active])
    return Baseline(typical, _score(actual, typical, spread * typical))


def baseline(daily: DailySeries, day: date) -> Baseline | None:
    """The baseline and score of ``day`` from the complete days before it (None: too few)."""
    days = history_days(daily, day, BASELINE_DAYS)
    if len(days) < MIN_BASELINE_DAYS:
        return None
    values = [daily.get(d, ZERO) for d in days]
    actual = daily.get(day, ZERO)
    if 2 * sum(1 for v in values if v > 0) < len(days):
        return _sparse(values, actual)

    flat = dict.fromkeys(range(7), Decimal(1))
    factors = weekday_factors(daily, days, MIN_PER_WEEKDAY) or flat
    level = median(
        [
            v / factors[d.weekday()]
            for d, v in zip(days, values, strict=True)
            if factors[d.weekday()] > 0
        ]
    )
    # Each history day is judged as the scored day will be: against a weekly pattern learnt
    # without it (in-sample residuals would understate the spread).
    loo = leave_one_out_factors(daily, days, MIN_PER_WEEKDAY) if factors is not flat else None
    residuals = []
    for d, v in zip(days, values, strict=True):
        e = (loo[d] if loo else Decimal(1)) * level
        if e > 0:
            residuals.append((v - e) / e)
    expected = factors[day.weekday()] * level
    # an expected 0 (a weekday the stream never runs on) is measured against the level
    unit = expected if expected > 0 else level
    return Baseline(expected, _score(actual, expected, _spread(residuals) * unit))


def stream_baselines(
    costs: Iterable[CostRecord],
    today: date,
    series: Mapping[Stream, DailySeries] | None = None,
) -> dict[Stream, Baseline]:
    """Baseline and score of **yesterday** per stream (all cost types together).

    ``costs`` must cover the :data:`BASELINE_DAYS` days before yesterday; ``series``: their
    daily totals per stream when already built (:func:`daily_by_stream`).
    """
    yesterday = today - timedelta(days=1)
    series = daily_by_stream(costs) if series is None else series
    out = {}
    for stream, daily in series.items():
        b = baseline({d: v for d, v in daily.items() if d <= yesterday}, yesterday)
        if b is not None:
            out[stream] = b
    return out


def new_streams(first_seen: Mapping[Stream, date], today: date) -> dict[Stream, date]:
    """Streams whose first day with data lies in the last :data:`NEW_STREAM_DAYS` days."""
    since = today - timedelta(days=NEW_STREAM_DAYS)
    return {s: d for s, d in first_seen.items() if since <= d <= today}
