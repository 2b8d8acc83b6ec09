"""Backtest of the month-end forecast on a year of synthetic daily cost.

Replays each year day by day: on every day the forecast is computed exactly as the
exporter does (``exporter.analytics.forecast.forecast_period``) from the complete days
before it plus a partial today, and compared with the month's actual total. The headline
is the MAPE of the forecast made on the **15th** of each month; the error by day of the
month and two naive forecasts are printed for comparison:

* ``linear MTD``: month to date / elapsed days x days in the month;
* ``flat 7d``: month to date + mean of the last 7 complete days x remaining days.

The synthetic cost has a weekly pattern (weekends at ~40 %), a trend (+60 % over the
year), multiplicative noise (sigma 12 %), one spike day (x4) and a step (+25 % from a new
workload) in the second half. Deterministic for given seeds; no dependency beyond the
exporter itself.

    python benchmarks/forecast_backtest.py               # seeds 1..20
    python benchmarks/forecast_backtest.py --seeds 1 --table
"""

from __future__ import annotations

import argparse
import calendar
import random
import statistics
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

from exporter.analytics.forecast import forecast_period, month_end

WEEKLY = (1.10, 1.05, 1.0, 1.0, 0.90, 0.45, 0.40)  # Monday first
BASE = 100.0
TREND = 0.60  # growth over the year
NOISE = 0.12
TODAY_SHARE = 0.5  # the 15th is read at noon: half of the day is in
START = date(2025, 1, 1)
DAYS = 365

Forecaster = Callable[[dict[date, Decimal], date, date, date], Decimal]


def synthetic_year(seed: int) -> dict[date, Decimal]:
    rng = random.Random(seed)
    spike = START + timedelta(days=rng.randrange(40, 330))
    step = START + timedelta(days=rng.randrange(180, 300))
    out = {}
    for i in range(DAYS):
        day = START + timedelta(days=i)
        value = BASE * WEEKLY[day.weekday()] * (1 + TREND * i / DAYS)
        value *= max(0.3, rng.gauss(1.0, NOISE))
        if day >= step:
            value *= 1.25
        if day == spike:
            value *= 4
        out[day] = Decimal(str(round(value, 6)))
    return out


def as_seen(year: dict[date, Decimal], today: date) -> dict[date, Decimal]:
    """What the exporter would have stored on ``today``: complete days and part of today."""
    seen = {d: v for d, v in year.items() if d < today}
    seen[today] = year[today] * Decimal(str(TODAY_SHARE))
    return seen


def linear_mtd(seen: dict[date, Decimal], today: date, start: date, end: date) -> Decimal:
    spent = sum((v for d, v in seen.items() if start <= d <= today), Decimal(0))
    elapsed = Decimal((today - start).days) + Decimal(str(TODAY_SHARE))
    return spent / elapsed * (end - start).days


def flat_7d(seen: dict[date, Decimal], today: date, start: date, end: date) -> Decimal:
    spent = sum((v for d, v in seen.items() if start <= d <= today), Decimal(0))
    last7 = [seen.get(today - timedelta(days=i), Decimal(0)) for i in range(1, 8)]
    rate = sum(last7, Decimal(0)) / 7
    return spent + rate * ((end - today).days - Decimal(str(TODAY_SHARE)))


METHODS: dict[str, Forecaster] = {
    "exporter": forecast_period,
    "linear MTD": linear_mtd,
    "flat 7d": flat_7d,
}


def errors(seed: int, day_of_month: int, method: Forecaster) -> list[tuple[date, float]]:
    """Absolute percentage error of the forecast made on ``day_of_month``, per month."""
    year = synthetic_year(seed)
    out = []
    for month in range(1, 13):
        today = date(START.year, month, min(day_of_month, calendar.monthrange(2025, month)[1]))
        start, end = today.replace(day=1), month_end(today)
        actual = sum((v for d, v in year.items() if start <= d < end), Decimal(0))
        predicted = method(as_seen(year, today), today, start, end)
        out.append((start, float(abs(predicted - actual) / actual) * 100))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="synthetic years 1..N (20)")
    parser.add_argument("--table", action="store_true", help="per-month errors of seed 1")
    args = parser.parse_args()
    seeds = range(1, args.seeds + 1)
    print(f"MAPE of the month-end forecast, {len(seeds)} synthetic year(s) x 12 months")
    print(f"{'made on day':>12} " + " ".join(f"{m:>11}" for m in METHODS))
    for dom in (5, 10, 15, 20, 25):
        cells = []
        for method in METHODS.values():
            apes = [e for s in seeds for _, e in errors(s, dom, method)]
            cells.append(f"{statistics.mean(apes):10.2f}%")
        print(f"{dom:>12} " + " ".join(cells))
    worst = max(e for s in seeds for _, e in errors(s, 15, forecast_period))
    print(f"worst single month on the 15th (exporter): {worst:.2f}%")
    if args.table:
        print("\nseed 1, forecast on the 15th: month, APE exporter / linear MTD / flat 7d")
        rows = zip(*(errors(1, 15, m) for m in METHODS.values()), strict=True)
        for row in rows:
            print(f"  {row[0][0]:%Y-%m}  " + "  ".join(f"{e:6.2f}%" for _, e in row))


if __name__ == "__main__":
    main()
