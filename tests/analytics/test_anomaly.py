"""Robust baselines and anomaly scores: spikes stand out, weekly patterns and noise do not."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from exporter.analytics.anomaly import (
    SCORE_CAP,
    baseline,
    new_streams,
    stream_baselines,
)
from exporter.clock import day_range
from exporter.records import CostRecord, FetchResult
from exporter.store import Store

START = date(2026, 1, 5)  # a Monday
END = date(2026, 3, 2)  # exclusive; 8 weeks + a few days of history before it


def scores(daily: dict[date, Decimal], first: date, last: date) -> dict[date, float]:
    """Replay day by day: the score each day got from the days before it."""
    out = {}
    for day in day_range(first, last + timedelta(days=1)):
        b = baseline({d: v for d, v in daily.items() if d <= day}, day)
        if b is not None:
            out[day] = b.score
    return out


def noisy(pattern: tuple[float, ...], seed: int, sigma: float = 0.08) -> dict[date, Decimal]:
    rng = random.Random(seed)
    return {
        d: Decimal(str(round(pattern[d.weekday()] * rng.gauss(1, sigma), 4)))
        for d in day_range(START, END)
    }


def test_a_steady_series_scores_zero_and_a_spike_day_stands_out() -> None:
    daily = {d: Decimal(10) for d in day_range(START, END)}
    spike = END - timedelta(days=10)
    daily[spike] = Decimal(30)
    got = scores(daily, START + timedelta(days=28), END - timedelta(days=1))
    assert got[spike] >= 3
    assert all(s == 0 for d, s in got.items() if d != spike)  # including the days after it
    b = baseline(daily, spike)
    assert b is not None and b.expected == 10
    # a flat history has no spread; the 20 % floor keeps a 10 % wobble unremarkable
    wobble = {**{d: Decimal(10) for d in day_range(START, END)}, END: Decimal(11)}
    b = baseline(wobble, END)
    assert b is not None and b.score == 0.5


def test_a_weekly_pattern_gives_no_false_positive_on_every_monday() -> None:
    # Monday batch jobs triple the cost; weekends are quiet
    daily = noisy((30, 10, 10, 10, 10, 3, 3), seed=1)
    got = scores(daily, START + timedelta(days=21), END - timedelta(days=1))
    mondays = [s for d, s in got.items() if d.weekday() == 0]
    assert len(mondays) >= 4 and max(mondays) < 3
    assert max(got.values()) < 3
    # the same Monday value on a Tuesday is an anomaly
    tuesday = END - timedelta(days=6)
    assert tuesday.weekday() == 1
    b = baseline({**daily, tuesday: Decimal(30)}, tuesday)
    assert b is not None and b.score >= 3


def test_an_injected_spike_is_the_only_day_scoring_3_in_a_noisy_weekly_month() -> None:
    daily = noisy((10, 10, 10, 10, 10, 4, 4), seed=7)
    spike = END - timedelta(days=12)
    daily[spike] *= 2
    got = scores(daily, END - timedelta(days=30), END - timedelta(days=1))
    assert [d for d, s in got.items() if s >= 3] == [spike]


def test_growth_is_not_an_anomaly() -> None:
    daily = {
        d: Decimal(100 + 2 * i) * (Decimal("0.4") if d.weekday() >= 5 else 1)
        for i, d in enumerate(day_range(START, END))
    }
    got = scores(daily, START + timedelta(days=28), END - timedelta(days=1))
    assert max(got.values()) < 3


def test_too_little_history_gives_no_baseline() -> None:
    daily = {d: Decimal(5) for d in day_range(date(2026, 2, 20), date(2026, 2, 26))}
    assert baseline(daily, date(2026, 2, 26)) is None  # 6 days
    daily[date(2026, 2, 26)] = Decimal(5)
    assert baseline(daily, date(2026, 2, 27)) is not None  # 7 days


def test_a_sparse_stream_is_judged_on_its_active_days() -> None:
    # used two days out of eleven, like a hackathon key
    daily = {
        d: Decimal(8) if (d - START).days % 11 in (3, 4) else Decimal(0)
        for d in day_range(START, END)
    }
    got = scores(daily, START + timedelta(days=28), END - timedelta(days=1))
    assert max(got.values()) < 3
    active = max(d for d, v in daily.items() if v)
    b = baseline({**daily, active: Decimal(40)}, active)
    assert b is not None and b.expected == 8 and b.score >= 3
    # idle for its whole baseline, then spending again: capped, not infinite
    silent = {START: Decimal(1), **{d: Decimal(0) for d in day_range(START + timedelta(1), END)}}
    silent[END] = Decimal(5)
    resumed = baseline(silent, END)
    assert resumed is not None and resumed.score == SCORE_CAP


def test_stream_baselines_score_yesterday_over_all_cost_types() -> None:
    today = END
    costs = []
    for d in day_range(START, today + timedelta(days=1)):
        tokens = Decimal(30) if d == today - timedelta(days=1) else Decimal(10)
        costs.append(CostRecord("openai", "a", d, "p", "m", "tokens", tokens))
        costs.append(CostRecord("openai", "a", d, "p", "m", "other", Decimal(1)))
    costs.append(CostRecord("openai", "a", today, "p", "m", "tokens", Decimal(500)))  # today
    out = stream_baselines(costs, today)
    b = out[("openai", "a", "p", "m")]
    assert b.expected == 11 and b.score == pytest.approx((31 - 11) / (0.2 * 11))


def test_new_streams_are_those_first_seen_in_the_last_seven_days(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    today = date(2026, 3, 18)
    rows = [
        CostRecord("openai", "a", date(2026, 1, 2), "old", "m", "tokens", Decimal(1)),
        CostRecord("openai", "a", today - timedelta(days=1), "old", "m", "tokens", Decimal(1)),
        CostRecord("openai", "a", today - timedelta(days=7), "edge", "m", "tokens", Decimal(1)),
        CostRecord("openai", "a", today - timedelta(days=8), "stale", "m", "tokens", Decimal(1)),
        CostRecord("openai", "a", today, "fresh", "m", "tokens", Decimal(1)),
    ]
    store.replace_window(
        "openai", "a", FetchResult(date(2026, 1, 1), today + timedelta(days=1), costs=rows)
    )
    first_seen = store.streams_first_seen(today - timedelta(days=8))
    assert set(first_seen) == {
        ("openai", "a", "edge", "m"),
        ("openai", "a", "stale", "m"),
        ("openai", "a", "fresh", "m"),
    }
    assert new_streams(first_seen, today) == {
        ("openai", "a", "edge", "m"): today - timedelta(days=7),
        ("openai", "a", "fresh", "m"): today,
    }
    store.close()
