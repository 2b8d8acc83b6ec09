"""Month-end forecast: month to date plus a weekday-aware run rate, by history length."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from exporter.analytics.forecast import (
    forecast_period,
    month_end,
    month_end_forecasts,
    run_rate,
)
from exporter.clock import day_range
from exporter.records import CostRecord

TODAY = date(2026, 3, 18)  # a Wednesday
MARCH = (date(2026, 3, 1), date(2026, 4, 1))
WEEKLY = (Decimal(10), Decimal(10), Decimal(10), Decimal(10), Decimal(10), Decimal(2), Decimal(2))


def q(value: Decimal) -> Decimal:
    """Estimates divide by weekday factors; compare them to 12 decimal places."""
    return value.quantize(Decimal("1e-12"))


def series(first: date, last: date, value: object) -> dict[date, Decimal]:
    """Days ``first..last`` inclusive; ``value`` is a Decimal or a weekday pattern."""
    pattern = value if isinstance(value, tuple) else (value,) * 7
    return {d: pattern[d.weekday()] for d in day_range(first, last + timedelta(days=1))}


def test_month_end_is_the_first_of_the_next_month() -> None:
    assert month_end(date(2026, 3, 18)) == date(2026, 4, 1)
    assert month_end(date(2026, 2, 28)) == date(2026, 3, 1)
    assert month_end(date(2026, 12, 31)) == date(2027, 1, 1)


def test_without_complete_days_the_forecast_is_the_month_to_date() -> None:
    daily = {TODAY: Decimal("4.5")}  # first seen today
    assert run_rate(daily, TODAY).history == 0
    assert forecast_period(daily, TODAY, *MARCH) == Decimal("4.5")


def test_three_days_of_history_use_their_plain_mean() -> None:
    daily = {
        TODAY - timedelta(days=3): Decimal(1),
        TODAY - timedelta(days=2): Decimal(2),
        TODAY - timedelta(days=1): Decimal(6),
        TODAY: Decimal(1),  # partial
    }
    rate = run_rate(daily, TODAY)
    assert (rate.history, rate.factors, rate.level) == (3, None, Decimal(3))
    # spent 9 on complete days + max(1, 3) today + 13 more days at 3
    assert forecast_period(daily, TODAY, *MARCH) == Decimal(9) + Decimal(3) + 13 * Decimal(3)


def test_ten_days_of_history_learn_the_weekly_pattern() -> None:
    daily = series(TODAY - timedelta(days=10), TODAY - timedelta(days=1), WEEKLY)
    rate = run_rate(daily, TODAY)
    assert rate.history == 10 and rate.factors is not None
    assert q(rate.expected(date(2026, 3, 21))) == 2  # a Saturday
    assert q(rate.expected(date(2026, 3, 23))) == 10  # a Monday
    # a flat mean (58/7 per day) would forecast a weekend-only remainder too high
    end = date(2026, 3, 23)
    spent = sum(v for d, v in daily.items() if d >= TODAY)
    assert q(forecast_period(daily, TODAY, TODAY, end)) == spent + 3 * 10 + 2 * 2


def test_sixty_days_with_growth_and_noise_land_near_the_true_month_end() -> None:
    daily: dict[date, Decimal] = {}
    for i, d in enumerate(day_range(date(2026, 1, 15), date(2026, 4, 1))):
        noise = Decimal("1.1") if i % 3 == 0 else Decimal("0.95")
        daily[d] = WEEKLY[d.weekday()] * (1 + Decimal(i) / 200) * noise
    actual = sum(v for d, v in daily.items() if d >= MARCH[0])
    seen = {d: v for d, v in daily.items() if d < TODAY}
    seen[TODAY] = daily[TODAY] / 2  # half of today has been reported
    predicted = forecast_period(seen, TODAY, *MARCH)
    assert run_rate(seen, TODAY).history == 28
    assert abs(predicted - actual) / actual < Decimal("0.03")


def test_one_spike_in_the_last_two_weeks_does_not_set_the_run_rate() -> None:
    steady = series(TODAY - timedelta(days=28), TODAY - timedelta(days=1), Decimal(10))
    spiked = dict(steady)
    spiked[TODAY - timedelta(days=2)] = Decimal(100)
    assert run_rate(steady, TODAY).level == Decimal(10)
    assert run_rate(spiked, TODAY).level == Decimal(10)


def test_todays_partial_cost_is_a_floor_not_the_estimate() -> None:
    daily = series(TODAY - timedelta(days=28), TODAY - timedelta(days=1), Decimal(10))
    quiet, busy = dict(daily), dict(daily)
    quiet[TODAY], busy[TODAY] = Decimal(1), Decimal(25)
    day = (TODAY, TODAY + timedelta(days=1))
    assert forecast_period(quiet, TODAY, *day) == Decimal(10)
    assert forecast_period(busy, TODAY, *day) == Decimal(25)


def test_a_forecast_needs_today_inside_the_period() -> None:
    with pytest.raises(ValueError, match="inside the period"):
        forecast_period({}, TODAY, date(2026, 4, 1), date(2026, 5, 1))


def test_month_end_forecast_per_stream_sums_cost_types() -> None:
    costs = []
    for d in day_range(TODAY - timedelta(days=3), TODAY):
        costs.append(CostRecord("openai", "a", d, "p", "m", "tokens", Decimal(2)))
        costs.append(CostRecord("openai", "a", d, "p", "", "web_search", Decimal("0.5")))
        costs.append(CostRecord("openai", "a", d, "p", "m", "other", Decimal(1)))
    out = month_end_forecasts(costs, TODAY)
    # stream p/m: 3 per day; 17 days (15..17 complete, 18 partial=0, 13 to come) at 3
    assert out[("openai", "a", "p", "m")] == Decimal(3) * 3 + Decimal(3) + 13 * Decimal(3)
    assert out[("openai", "a", "p", "")] == Decimal("0.5") * 17
